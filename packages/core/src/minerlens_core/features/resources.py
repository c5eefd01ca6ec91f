"""What a window's pod (or process) consumed, from the stream's resource samples.

Samples (``ResourceSnapshot``) hold cumulative counters; a window ``[start, end)`` is summarised from
two of them: the **anchor**, the latest sample at or before ``start`` (or the first one inside the
window when there is none before), and the **last** sample before ``end``. CPU is the difference of
their CPU times over the difference of their timestamps, so a rate is exact over the interval the
samples span, and a window whose samples are missing says so (NaN) instead of guessing.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from minerlens_core.schemas.resources import FdCounts, ProcessSample, ResourceSnapshot

MIN_SPAN_NS = 200_000_000
"""Two samples closer than this (0.2 s) give no CPU rate: too little time to trust the counters' resolution."""


@dataclass(frozen=True, slots=True)
class ProcessUse:
    """One process over a window."""

    pid: int
    comm: str
    exe: str
    cpu_cores: float
    """NaN when it could not be measured (the process was in only one sample)"""


@dataclass(frozen=True, slots=True)
class ResourceUse:
    """What the pod (``pid is None`` windows) or one process consumed over a window; NaN: not measured."""

    span_s: float
    """time between the two samples the rates use (NaN: fewer than two samples)"""
    cpu_cores: float
    throttled_cores: float
    threads: float
    running: float
    """mean number of runnable threads over the window's samples"""
    memory_bytes: float
    hugetlb_bytes: float
    fds: FdCounts | None
    """None: not known (an fd table was unreadable, or the sample left processes out)"""
    processes: int
    top: ProcessUse | None
    """the process that used the most CPU (the one to name in an alert)"""


def _delta(a: int | None, b: int | None, dt_s: float) -> float:
    if a is None or b is None or not dt_s > 0:
        return math.nan
    return max(b - a, 0) / 1e9 / dt_s


def _fd_sum(ps: Sequence[ProcessSample], omitted: int = 0) -> FdCounts | None:
    """The fds of all of ``ps``; None (unknown) when one fd table was unreadable or processes were left out."""
    if omitted or any(p.fds is None for p in ps):
        return None
    fds = [p.fds for p in ps if p.fds is not None]
    return FdCounts(
        file=sum(f.file for f in fds),
        socket_inet=sum(f.socket_inet for f in fds),
        socket_other=sum(f.socket_other for f in fds),
        pipe=sum(f.pipe for f in fds),
        anon=sum(f.anon for f in fds),
        device=sum(f.device for f in fds),
        socket_listen=sum(f.socket_listen for f in fds),
    )


def bracket(
    samples: Sequence[ResourceSnapshot], start_ns: int, end_ns: int
) -> tuple[ResourceSnapshot, ResourceSnapshot, list[ResourceSnapshot]] | None:
    """(anchor, last, samples inside [start, end)) of a window, or None without a sample before ``end``.

    ``samples`` must be sorted by ``ts_ns``.
    """
    times = [s.ts_ns for s in samples]
    lo = bisect.bisect_right(times, start_ns)  # samples[:lo] are at or before start
    hi = bisect.bisect_left(times, end_ns)  # samples[:hi] are before end
    if hi == 0:
        return None
    inside = list(samples[lo:hi])
    anchor = samples[lo - 1] if lo > 0 else samples[lo]
    return anchor, samples[hi - 1], inside


def process_cpu(anchor: ResourceSnapshot, last: ResourceSnapshot) -> dict[int, float]:
    """CPU cores each process of ``last`` used since ``anchor``.

    A process missing from ``anchor`` started in between (its CPU time all falls inside), unless the
    anchor left processes out (``processes_omitted``): then its rate is unknown (NaN).
    """
    dt_s = (last.ts_ns - anchor.ts_ns) / 1e9
    if last.ts_ns - anchor.ts_ns < MIN_SPAN_NS:
        return {p.pid: math.nan for p in last.processes}
    before: dict[int, int | None] = {p.pid: p.cpu_ns for p in anchor.processes}
    new = 0 if anchor.processes_omitted == 0 else None
    return {p.pid: _delta(before.get(p.pid, new), p.cpu_ns, dt_s) for p in last.processes}


def _top(last: ResourceSnapshot, cpu: dict[int, float], pid: int | None = None) -> ProcessUse | None:
    cands = [p for p in last.processes if pid is None or p.pid == pid]
    if not cands:
        return None

    def busy(p: ProcessSample) -> tuple[float, int]:
        c = cpu.get(p.pid, math.nan)
        return (-1.0 if math.isnan(c) else c, -p.pid)

    best = max(cands, key=busy)
    return ProcessUse(best.pid, best.comm, best.exe, cpu.get(best.pid, math.nan))


def summarise(
    samples: Sequence[ResourceSnapshot], start_ns: int, end_ns: int, pid: int | None = None
) -> ResourceUse | None:
    """The pod's (``pid=None``) or one process's use over ``[start_ns, end_ns)``; None without samples."""
    b = bracket(samples, start_ns, end_ns)
    if b is None:
        return None
    anchor, last, inside = b
    span_ns = last.ts_ns - anchor.ts_ns
    dt_s = span_ns / 1e9 if span_ns >= MIN_SPAN_NS else math.nan
    cpu = process_cpu(anchor, last)
    seen = inside or [last]
    if pid is None:
        if last.cpu_ns is not None and anchor.cpu_ns is not None:
            cores = _delta(anchor.cpu_ns, last.cpu_ns, dt_s)
        else:
            cores = math.fsum(c for c in cpu.values() if not math.isnan(c)) if not math.isnan(dt_s) else math.nan
        threads = float(last.threads) if last.threads is not None else float(sum(p.threads for p in last.processes))
        running = sum(sum(p.running for p in s.processes) for s in seen) / len(seen)
        memory = last.memory_bytes if last.memory_bytes is not None else sum(p.rss_bytes for p in last.processes)
        huge = last.hugetlb_bytes if last.hugetlb_bytes is not None else sum(p.hugetlb_bytes for p in last.processes)
        return ResourceUse(
            span_s=dt_s,
            cpu_cores=cores,
            throttled_cores=_delta(anchor.throttled_ns, last.throttled_ns, dt_s),
            threads=threads,
            running=running,
            memory_bytes=float(memory),
            hugetlb_bytes=float(huge),
            fds=_fd_sum(last.processes, last.processes_omitted),
            processes=len(last.processes) + last.processes_omitted,
            top=_top(last, cpu),
        )
    mine = next((p for p in last.processes if p.pid == pid), None)
    if mine is None:
        return None
    runs = [next((p.running for p in s.processes if p.pid == pid), 0) for s in seen]
    return ResourceUse(
        span_s=dt_s,
        cpu_cores=cpu.get(pid, math.nan),
        throttled_cores=math.nan,
        threads=float(mine.threads),
        running=sum(runs) / len(runs),
        memory_bytes=float(mine.rss_bytes),
        hugetlb_bytes=float(mine.hugetlb_bytes),
        fds=mine.fds,
        processes=1,
        top=_top(last, cpu, pid),
    )
