"""``EbpfSource``: in-kernel aggregation of the pods' syscalls (``minerlens.bpf.o``), read once per window.

Unlike tracefs it copies no event out of the kernel: ``read_window()`` returns per-(cgroup, process, thread)
syscall counts, per-process n-gram counts and a bounded sample of the sequence for the window that just
closed. The kernel filters by the pods' cgroup v2 ids (``set_streams``, from the collector's cgroup scan), so
no pid is ever seeded and a process entering a pod's cgroup by any route is counted from its first syscall.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from minerlens_core.features import DEFAULT_CHEAP
from minerlens_core.syscalls import Arch, host_arch, syscall_number

from minerlens_collector.agent.ebpf.cgroup_ids import StreamKey, stream_cgroup_ids, v2_root
from minerlens_collector.agent.ebpf.libbpf import BpfError
from minerlens_collector.agent.ebpf.program import DEFAULT_OBJECT, BpfProgram, Collected
from minerlens_collector.events import RawEvents

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AggregateWindow:
    """What the kernel aggregated between two reads. Arrays as in ``program.Collected``; sample times are
    Unix-epoch ns. ``lost``/``events``/``sampled`` count this window only."""

    start_ns: int
    end_ns: int
    data: Collected
    streams: dict[int, StreamKey]
    lost: dict[str, int]  # node-wide, by reason
    lost_by_cgroup: dict[int, int]  # refused records per cgroup (any reason)
    events: int
    sampled: int

    def cgroups_of(self, key: StreamKey) -> npt.NDArray[np.uint64]:
        return np.array([c for c, k in self.streams.items() if k == key], np.uint64)

    def calls(self, key: StreamKey, nr: int | None = None) -> int:
        """Calls of one stream (of syscall ``nr`` only, when given)."""
        c = self.data.counts
        sel = np.isin(c["cgid"], self.cgroups_of(key))
        if nr is not None:
            sel &= c["nr"] == nr
        return int(c["n"][sel].sum())


@dataclass
class _Totals:
    events: int = 0
    sampled: int = 0
    lost: dict[str, int] = field(default_factory=dict)
    by_cgroup: dict[int, int] = field(default_factory=dict)


class EbpfSource:
    """The collector's eBPF source. ``poll`` only drains the sample ring (the source yields no raw events)."""

    aggregating = True

    def __init__(
        self,
        cgroup_root: Path = Path("/sys/fs/cgroup"),
        *,
        obj: Path | None = None,
        sample_budget: int = 256,
        map_entries: int | None = None,
        cheap: Iterable[str] = DEFAULT_CHEAP,
        arch: Arch | None = None,
    ) -> None:
        self.name = "ebpf"
        self.root = v2_root(cgroup_root)
        self.program = BpfProgram(obj or DEFAULT_OBJECT, sample_budget=sample_budget, map_entries=map_entries)
        arch = arch or host_arch()
        self.cheap = {n for n in (syscall_number(s, arch) for s in cheap) if n is not None}
        self.streams: dict[int, StreamKey] = {}
        self.missing: list[StreamKey] = []
        self.refused_cgroups = 0
        self._totals = _Totals()
        self._window_start_ns = time.time_ns()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Load, configure and attach the program (``BpfError`` says why when the kernel refuses)."""
        if self.program.attached:
            return
        if self.root is None:
            raise BpfError(2, "no cgroup2 hierarchy mounted: the eBPF source filters by cgroup v2 ids")
        self.program.open()
        self.program.set_cheap(self.cheap)
        self._window_start_ns = time.time_ns()

    def stop(self) -> None:
        self.program.close()

    @property
    def running(self) -> bool:
        return self.program.attached

    # -- scope -----------------------------------------------------------------------------
    def add_pids(self, pids: Iterable[int]) -> None:
        """Nothing to do: the kernel filters by cgroup (``set_streams``), never by pid."""

    def set_streams(self, dirs: dict[StreamKey, str]) -> None:
        """Count exactly the tasks in the cgroups (and below) of these streams (paths relative to a hierarchy)."""
        assert self.root is not None
        ids, missing = stream_cgroup_ids(self.root, dirs)
        if missing and missing != self.missing:
            log.warning(
                "%d pod streams have no cgroup v2 directory; the eBPF source cannot see them: %s",
                len(missing),
                missing[:5],
            )
        self.streams, self.missing = ids, missing
        _, refused = self.program.set_cgroups(set(ids))
        if refused:
            self.refused_cgroups += refused
            log.warning("eBPF cgroup filter full: %d cgroups not traced", refused)

    # -- data ------------------------------------------------------------------------------
    def poll(self, timeout_s: float) -> RawEvents:
        time.sleep(timeout_s)
        self.program.drain_ring()
        return RawEvents.empty()

    def loss_delta(self) -> dict[int, int]:
        """No per-CPU ring-buffer loss here; losses are per reason (``AggregateWindow.lost``)."""
        return {}

    def read_window(self) -> AggregateWindow:
        """Close the current window: its aggregates, and the loss counted during it."""
        data = self.program.collect()
        end = time.time_ns()
        offset = end - time.monotonic_ns()
        if len(data.samples):
            data.samples["ts_ns"] += np.uint64(offset)
        t = self._totals
        lost = {k: v - t.lost.get(k, 0) for k, v in data.lost.items()}
        by_cgroup = {c: v - t.by_cgroup.get(c, 0) for c, v in data.lost_by_cgroup.items()}  # a re-added id restarts
        win = AggregateWindow(
            start_ns=self._window_start_ns,
            end_ns=end,
            data=data,
            streams=dict(self.streams),
            lost=lost,
            lost_by_cgroup={c: v for c, v in by_cgroup.items() if v > 0},
            events=data.seen - t.events,
            sampled=data.sampled - t.sampled,
        )
        t.events, t.sampled, t.lost, t.by_cgroup = data.seen, data.sampled, dict(data.lost), data.lost_by_cgroup
        self._window_start_ns = end
        if any(lost.values()):
            log.warning("eBPF source lost %s in the window", {k: v for k, v in lost.items() if v})
        return win
