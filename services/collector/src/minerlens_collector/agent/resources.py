"""The resource sampler: what each stream's cgroup and processes consumed, as ``ResourceSnapshot``.

One round reads, for every target (a (pod, container) cgroup, or an explicit process list):

* the cgroup's counters (``cgroup_stats``: CPU, throttling, memory, huge pages, tasks);
* ``/proc/<pid>/stat`` of every process in it (at most ``max_scan``), then for the busiest
  ``max_processes`` by CPU used since the previous round: ``status`` (RSS, huge pages), ``exe``,
  the threads in state R (``task/*/stat``, skipped above ``max_threads`` threads) and every fd by kind
  (``fds``; the fd maps also feed the event tagger, ``FdTable``).

Processes that exit mid-read are skipped (they race with the sampler all the time); whatever else
cannot be read is ``None``/0 and counted in ``SamplerStats``, never raised.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from minerlens_core.schemas.resources import MAX_PROCESSES, ProcessSample, ResourceSnapshot

from minerlens_collector.agent.cgroup_stats import CgroupCounters, CgroupReader
from minerlens_collector.agent.fds import MAX_FDS, NetInodes, scan_fds
from minerlens_collector.procfs import ProcStat, count_running, open_dir, printable, read_exe, read_memory, read_stat

log = logging.getLogger(__name__)
StreamKey = tuple[str, str]
"""(pod uid, container id)"""
_SMALL_MAX = (1 << 31) - 1


@dataclass(frozen=True)
class SampleTarget:
    """What to sample: a cgroup (path relative to the hierarchy roots) and/or explicit processes."""

    rel: str | None
    pids: tuple[int, ...] | None = None
    """the processes to list (``None``: every process in the cgroup and below)"""


@dataclass
class SamplerStats:
    rounds: int = 0
    samples: int = 0
    processes: int = 0
    """processes read in full"""
    vanished: int = 0
    """processes that exited while being read (skipped)"""
    omitted: int = 0
    """processes beyond the busiest ``max_processes`` (or beyond ``max_scan``)"""
    running_skipped: int = 0
    """processes with more than ``max_threads`` threads: their running threads were not counted"""
    fds_truncated: int = 0
    unreadable: int = 0
    """cgroup counters or process files that exist but could not be read"""
    errors: int = 0
    """streams whose sample could not be built (a value the contract refuses)"""
    seconds: float = 0.0
    """wall time spent sampling"""
    cpu_seconds: float = 0.0
    """CPU time (this thread) spent sampling"""


@dataclass
class SampleRound:
    snapshots: dict[StreamKey, ResourceSnapshot] = field(default_factory=dict)
    fd_maps: dict[int, dict[int, int]] = field(default_factory=dict)
    """fd -> FdKind of every process whose fds were read"""
    pids: set[int] = field(default_factory=set)
    """every process seen in a target (to forget the others' fd maps)"""
    seconds: float = 0.0


class ResourceSampler:
    """Samples targets; remembers each target's per-process CPU to rank processes by recent use."""

    def __init__(
        self,
        cgroups: CgroupReader,
        proc: str = "/proc",
        *,
        max_processes: int = MAX_PROCESSES,
        max_scan: int = 4096,
        max_threads: int = 256,
        max_fds: int = MAX_FDS,
    ) -> None:
        self.cgroups = cgroups
        self._proc = proc
        self.max_processes = min(max_processes, MAX_PROCESSES)
        self.max_scan = max_scan
        self.max_threads = max_threads
        self.max_fds = max_fds
        self._prev: dict[StreamKey, dict[int, int]] = {}
        self._net = NetInodes(proc)
        self.stats = SamplerStats()

    def sample(self, targets: Mapping[StreamKey, SampleTarget]) -> SampleRound:
        """One snapshot per target that still exists (a cgroup that is gone gives none)."""
        t0, c0 = time.perf_counter(), time.thread_time()
        self._net.new_round()
        out = SampleRound()
        for key, target in targets.items():
            try:
                snap = self._sample(key, target, out)
            except ValueError:  # a value the contract refuses: lose this stream's sample, not the round's
                log.warning("resource sample of %s/%s refused by the contract", *key, exc_info=True)
                self.stats.errors += 1
                continue
            if snap is not None:
                out.snapshots[key] = snap
        for gone in self._prev.keys() - targets.keys():
            del self._prev[gone]
        out.seconds = time.perf_counter() - t0
        s = self.stats
        s.rounds += 1
        s.samples += len(out.snapshots)
        s.seconds += out.seconds
        s.cpu_seconds += time.thread_time() - c0
        return out

    def _sample(self, key: StreamKey, target: SampleTarget, out: SampleRound) -> ResourceSnapshot | None:
        ts = time.time_ns()
        counters = CgroupCounters()
        pids: list[int] = list(dict.fromkeys(target.pids or ()))
        if target.rel is not None:
            if not self.cgroups.exists(target.rel):
                return None
            counters = self.cgroups.counters(target.rel)
            if counters.cpu_ns is None:
                self.stats.unreadable += 1
            if target.pids is None:
                pids = self.cgroups.processes(target.rel, self.max_scan + 1) or []
        scanned = pids[: self.max_scan]
        stats: dict[int, ProcStat] = {}
        for pid in scanned:
            st = read_stat(self._proc, pid) if pid > 0 else None
            if st is None:
                self.stats.vanished += 1
            else:
                stats[pid] = st
        out.pids.update(stats)
        prev = self._prev.get(key, {})
        chosen = list(stats)
        if len(chosen) > self.max_processes:
            chosen.sort(key=lambda p: stats[p].cpu_ns - prev.get(p, 0), reverse=True)
            chosen = chosen[: self.max_processes]
        self._prev[key] = {p: st.cpu_ns for p, st in stats.items()}
        processes = [
            p
            for pid in sorted(chosen)
            if (p := self._process(pid, stats[pid], stats[pid].cpu_ns != prev.get(pid), out)) is not None
        ]
        omitted = len(stats) - len(chosen) + max(0, len(pids) - len(scanned))
        self.stats.omitted += omitted
        return ResourceSnapshot(
            ts_ns=ts,
            cpu_ns=counters.cpu_ns,
            throttled_ns=counters.throttled_ns,
            memory_bytes=counters.memory_bytes,
            hugetlb_bytes=counters.hugetlb_bytes,
            threads=None if counters.threads is None else min(counters.threads, _SMALL_MAX),
            processes=processes,
            processes_omitted=min(omitted, _SMALL_MAX),
        )

    def _process(self, pid: int, st: ProcStat, busy: bool, out: SampleRound) -> ProcessSample | None:
        proc = self._proc
        pid_dir = open_dir(f"{proc}/{pid}")
        if pid_dir is None:
            self.stats.vanished += 1
            return None
        try:
            memory = read_memory(pid_dir)
            exe = read_exe(pid_dir)
            running: int | None = 0
            if busy:  # a thread that ran in no tick of the interval is very unlikely to be in state R now
                running = count_running(pid_dir, self.max_threads) if st.threads <= self.max_threads else None
            fds = scan_fds(proc, pid, self._net, self.max_fds, pid_dir=pid_dir)
        finally:
            os.close(pid_dir)
        if memory is None or fds is None or (running is None and st.threads <= self.max_threads):
            if not os.path.exists(f"{proc}/{pid}"):
                self.stats.vanished += 1
                return None
            self.stats.unreadable += 1
        if running is None and st.threads > self.max_threads:
            self.stats.running_skipped += 1
        if fds is not None:
            out.fd_maps[pid] = fds.kinds
            if fds.truncated:
                self.stats.fds_truncated += 1
        self.stats.processes += 1
        return ProcessSample(
            pid=pid,
            comm=printable(st.comm, 64),
            exe=printable(exe, 1024),
            cpu_ns=st.cpu_ns,
            threads=min(st.threads, _SMALL_MAX),
            running=min(running or 0, _SMALL_MAX),
            rss_bytes=memory.rss_bytes if memory else 0,
            hugetlb_bytes=memory.hugetlb_bytes if memory else 0,
            fds=fds.counts() if fds is not None else None,
        )
