"""Local capture: run (or attach to) a workload as an emulated pod and write a canonical trace file.

Besides the syscalls (with the ``fd_kind`` of each I/O call when the source decodes arguments), the
pod's resources are sampled every second at pod-cgroup level with its processes (``ResourceSnapshot``)
and stored in the trace (``Trace.resources``), under the trace's own (pod uid, container id).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from minerlens_core.errors import CaptureError
from minerlens_core.syscalls import Arch, host_arch, syscall_name
from minerlens_core.traces import StreamSample, TraceMeta, conform, write_trace

from minerlens_collector.agent.attribution import TaskIdentity, TaskResolver
from minerlens_collector.agent.batcher import exec_numbers, exec_tids
from minerlens_collector.agent.cgroup_stats import CgroupReader
from minerlens_collector.agent.fdtable import FdTable
from minerlens_collector.agent.resources import ResourceSampler, SampleTarget
from minerlens_collector.agent.source import EventSource, open_source
from minerlens_collector.cgroups import PodCgroup, cgroup_pids, parse_cgroup_path
from minerlens_collector.events import RawEvents
from minerlens_collector.tools.local_pod import Driver, LocalPod

log = logging.getLogger(__name__)
CGROUP_ROOT = Path("/sys/fs/cgroup")
SAMPLE_INTERVAL_S = 1.0


@dataclass
class PodLabel:
    """Who the captured workload is, as written into the trace."""

    namespace: str
    name: str
    label: str = "unknown"
    workload: str = ""
    family: str = ""
    variant: str = ""


@dataclass
class CaptureResult:
    path: Path | None
    events: int
    lost_events: int
    seconds: float
    exit_code: int | None
    cpu_ns: int | None = None
    per_syscall: dict[str, int] = field(default_factory=dict)
    resource_samples: int = 0


@dataclass
class _Recorder:
    """Accumulates polled events and resolves each new thread while it is still alive."""

    source: EventSource
    resolver: TaskResolver
    parts: list[RawEvents] = field(default_factory=list)
    tasks: dict[int, TaskIdentity] = field(default_factory=dict)
    lost: int = 0
    seeded: set[int] = field(default_factory=set)
    fd_table: FdTable | None = None
    kinds: list[np.ndarray | None] = field(default_factory=list)
    sampler: ResourceSampler | None = None
    target: SampleTarget | None = None
    stream: tuple[str, str] = ("", "")
    samples: list[StreamSample] = field(default_factory=list)
    exec_nrs: list[int] = field(default_factory=lambda: exec_numbers(host_arch()))

    def seed(self, tids: Sequence[int]) -> None:
        new = [t for t in tids if t not in self.seeded]
        if new:
            self.source.add_pids(new)
            self.seeded.update(new)
            for t in new:
                self.tasks.setdefault(t, self.resolver.resolve(t))

    def poll(self, timeout_s: float) -> None:
        ev = self.source.poll(timeout_s)
        if len(ev):
            self.parts.append(ev)
            execs = exec_tids(ev, self.exec_nrs)
            if execs:  # a thread started a new program (the pod's gate shell execs the workload): new name
                self.resolver.forget(execs)
                for t in execs:
                    found = self.resolver.resolve(t)
                    if found.seen_live or t not in self.tasks:
                        self.tasks[t] = found
            for t in np.unique(ev.tid).tolist():
                if t not in self.tasks:
                    self.tasks[t] = self.resolver.resolve(t)
            self.kinds.append(self._tag(ev))
        # page-header 'missed' counts are part of the per-CPU overrun stats: count loss once, from those
        self.lost += sum(self.source.loss_delta().values())

    def _tag(self, ev: RawEvents) -> np.ndarray | None:
        if self.fd_table is None or ev.arg0 is None:
            return None
        uniq, inv = np.unique(ev.tid, return_inverse=True)
        pids = np.array([self.tasks[t].pid if t in self.tasks else -1 for t in uniq.tolist()], dtype=np.int64)
        return self.fd_table.tag(pids[inv], ev.nr, ev.arg0)

    def sample(self) -> None:
        """One resource snapshot of the target (and fresh fd maps for the tagger)."""
        if self.sampler is None or self.target is None:
            return
        try:
            rnd = self.sampler.sample({self.stream: self.target})
        except Exception:  # a sampler bug must not lose the capture
            log.exception("resource sampling failed")
            return
        if self.fd_table is not None:
            self.fd_table.replace(rnd.fd_maps)
        snap = rnd.snapshots.get(self.stream)
        if snap is not None:
            self.samples.append(StreamSample(pod_uid=self.stream[0], container_id=self.stream[1], sample=snap))


def _to_table(rec: _Recorder, pod: PodCgroup, who: PodLabel, arch: Arch) -> pa.Table:
    ev = RawEvents.concat(rec.parts)
    n = len(ev)
    uniq_tid, inv_tid = np.unique(ev.tid, return_inverse=True)
    pids = np.array([rec.tasks[t].pid if t in rec.tasks else t for t in uniq_tid.tolist()], dtype=np.int32)
    comms = [rec.tasks[t].comm if t in rec.tasks else "" for t in uniq_tid.tolist()]
    uniq_nr, inv_nr = np.unique(ev.nr, return_inverse=True)
    names = [syscall_name(int(x), arch) for x in uniq_nr]

    def same(value: str) -> pa.Array:
        return pa.repeat(pa.scalar(value, pa.string()), n) if n else pa.array([], pa.string())

    table = pa.table(
        {
            "ts_ns": pa.array(ev.ts_ns, mask=ev.ts_ns < 0),
            "pod_uid": same(pod.pod_uid),
            "namespace": same(who.namespace),
            "pod_name": same(who.name),
            "container_id": same(pod.container_id),
            "pid": pa.array(pids[inv_tid]),
            "tid": pa.array(ev.tid.astype(np.int32)),
            "comm": pa.array(np.asarray(comms, dtype=object)[inv_tid], pa.string()),
            "nr": pa.array(ev.nr.astype(np.int32)),
            "syscall": pa.array(np.asarray(names, dtype=object)[inv_nr], pa.string()),
            "arch": same(arch.value),
            "fd_kind": _kinds(rec, n),
        }
    )
    return conform(table)


def _kinds(rec: _Recorder, n: int) -> pa.Array:
    """The fd_kind column: the tags when every polled part has them, else nulls (the source cannot tell)."""
    tagged = [k for k in rec.kinds if k is not None]
    if n and len(tagged) == len(rec.parts) and sum(len(k) for k in tagged) == n:
        return pa.array(np.concatenate(tagged), pa.int8())
    return pa.nulls(n, pa.int8())


def _record(
    rec: _Recorder,
    *,
    seconds: float,
    tids: Callable[[], list[int]],
    alive: Callable[[], bool],
    reseed_s: float = 0.2,
) -> float:
    start = time.monotonic()
    next_seed = start
    rec.sample()
    next_sample = (time.time() // SAMPLE_INTERVAL_S + 1) * SAMPLE_INTERVAL_S  # aligned to wall-clock seconds
    while True:
        now = time.monotonic()
        if now - start >= seconds or not alive():
            break
        if now >= next_seed:
            rec.seed(tids())
            next_seed = now + reseed_s
        if time.time() >= next_sample:
            rec.sample()
            next_sample = (time.time() // SAMPLE_INTERVAL_S + 1) * SAMPLE_INTERVAL_S
        rec.poll(0.05)
    elapsed = time.monotonic() - start
    rec.sample()
    for _ in range(3):  # drain what is still in the buffers
        rec.poll(0.02)
    return elapsed


def capture_command(
    argv: Sequence[str],
    who: PodLabel,
    *,
    seconds: float,
    out: Path | None,
    source_kind: str = "auto",
    driver: Driver = "cgroupfs",
    cpu_limit: float | None = None,
    on_start: Callable[[LocalPod], None] | None = None,
) -> CaptureResult:
    """Run ``argv`` in a fresh emulated pod for at most ``seconds`` and capture every syscall it makes."""
    arch = host_arch()
    with LocalPod(who.namespace, who.name, driver=driver, cpu_limit=cpu_limit) as pod:
        source = open_source(source_kind, instance=f"minerlens-capture-{os.getpid()}", buffer_kb=16384)  # type: ignore[arg-type]
        source.start()
        try:
            ident = parse_cgroup_path(pod.cgroup_path)
            assert ident is not None
            pod_rel = str(Path(pod.cgroup_path).parent).lstrip("/")  # the pod level, all its containers
            rec = _recorder(source, SampleTarget(pod_rel), (ident.pod_uid, ident.container_id))
            spawned = pod.spawn(argv, gated=True)
            rec.seed([spawned.pid])
            cpu0 = pod.cpu_usage_ns()
            spawned.release()
            if on_start is not None:
                on_start(pod)
            elapsed = _record(rec, seconds=seconds, tids=pod.pids, alive=lambda: spawned.proc.poll() is None)
            cpu1 = pod.cpu_usage_ns()
            exit_code = spawned.proc.poll()
        finally:
            source.stop()
        return _finish(
            rec,
            ident,
            who,
            arch,
            elapsed,
            exit_code,
            out,
            source.name,
            list(argv),
            None if cpu0 is None or cpu1 is None else cpu1 - cpu0,
        )


def capture_existing(
    who: PodLabel,
    *,
    seconds: float,
    out: Path | None,
    cgroup_dir: Path | None = None,
    pid: int | None = None,
    source_kind: str = "auto",
) -> CaptureResult:
    """Capture a cgroup (``--attach-cgroup``) or a process and its threads (``--pid``) already running."""
    if (cgroup_dir is None) == (pid is None):
        msg = "give exactly one of a cgroup directory or a pid"
        raise CaptureError(msg)
    if cgroup_dir is not None:
        if not cgroup_dir.is_dir():
            msg = f"{cgroup_dir}: no such cgroup directory"
            raise CaptureError(msg)
        parsed = parse_cgroup_path(str(cgroup_dir))
        ident = parsed or PodCgroup(f"cgroup-{abs(hash(str(cgroup_dir))):x}", "besteffort")
        rel = CgroupReader.at(CGROUP_ROOT).relpath(cgroup_dir.resolve())
        target = SampleTarget(rel) if rel is not None else None

        def tids() -> list[int]:
            return cgroup_pids(cgroup_dir)
    else:
        task_dir = Path(f"/proc/{pid}/task")
        if not task_dir.is_dir():
            msg = f"no process with pid {pid}"
            raise CaptureError(msg)
        found = TaskResolver().resolve(int(pid or 0)).pod
        ident = found or PodCgroup(f"pid-{pid}", "besteffort")
        target = SampleTarget(None, pids=(int(pid or 0),))  # that process only, not its whole cgroup

        def tids() -> list[int]:
            try:
                return [int(t.name) for t in task_dir.iterdir()]
            except FileNotFoundError:
                return []

    arch = host_arch()
    source = open_source(source_kind, instance=f"minerlens-capture-{os.getpid()}", buffer_kb=16384)  # type: ignore[arg-type]
    source.start()
    try:
        rec = _recorder(source, target, (ident.pod_uid, ident.container_id))
        elapsed = _record(rec, seconds=seconds, tids=tids, alive=lambda: bool(tids()))
    finally:
        source.stop()
    return _finish(rec, ident, who, arch, elapsed, None, out, source.name, [], None)


def _recorder(source: EventSource, target: SampleTarget | None, stream: tuple[str, str]) -> _Recorder:
    return _Recorder(
        source,
        TaskResolver(exited=getattr(source, "task", None)),
        fd_table=FdTable(host_arch()),
        sampler=ResourceSampler(CgroupReader.at(CGROUP_ROOT)) if target is not None else None,
        target=target,
        stream=stream,
    )


def _finish(
    rec: _Recorder,
    ident: PodCgroup,
    who: PodLabel,
    arch: Arch,
    elapsed: float,
    exit_code: int | None,
    out: Path | None,
    source: str,
    command: list[str],
    cpu_ns: int | None,
) -> CaptureResult:
    table = _to_table(rec, ident, who, arch)
    counts = table.column("syscall").value_counts().to_pylist()
    per_syscall = dict(sorted(((c["values"], c["counts"]) for c in counts), key=lambda kv: -kv[1]))
    meta = TraceMeta(
        source=source,
        label=who.label if who.label in ("miner", "benign") else "unknown",  # type: ignore[arg-type]
        workload=who.workload,
        family=who.family,
        variant=who.variant,
        node=os.uname().nodename,
        arch=arch,
        has_time=True,
        seconds=round(elapsed, 3),
        lost_events=rec.lost,
        command=command,
        extra={"cpu_ns": cpu_ns, "pod_uid": ident.pod_uid, "container_id": ident.container_id},
    )
    path = write_trace(out, table, meta, resources=rec.samples) if out is not None else None
    return CaptureResult(
        path, table.num_rows, rec.lost, elapsed, exit_code, cpu_ns, per_syscall, resource_samples=len(rec.samples)
    )
