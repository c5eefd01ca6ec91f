"""Per-window syscall aggregates of one stream, as the collector's eBPF source computes them in the kernel:
calls per (process, thread, syscall), per-thread consecutive pairs (all calls, and no-cheap calls) and no-cheap
triples summed per process (contract: ``minerlens_core.schemas.aggregates.SyscallAggregate``).

``aggregate_events`` is the reference: the same aggregates computed from raw events in kernel order (a
``SyscallBatch`` window, a trace). The eBPF program must agree with it exactly (tests/collector, captured both
ways at once); a featurizer fed either input can therefore go through this one representation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from minerlens_core.schemas.aggregates import NR_OTHER, SyscallAggregate

Ints = npt.NDArray[np.integer]


@dataclass
class StreamAggregates:
    counts: Counter[tuple[int, int, int]] = field(default_factory=Counter)  # (pid, tid, nr)
    ngram2: Counter[tuple[int, int, int, int]] = field(default_factory=Counter)  # (pid, a, b, nc)
    ngram3: Counter[tuple[int, int, int, int]] = field(default_factory=Counter)  # (pid, a, b, c)

    @classmethod
    def from_message(cls, msg: SyscallAggregate) -> StreamAggregates:
        c, p, t = msg.counts, msg.ngram2, msg.ngram3
        out = cls()
        for row in zip(c.pid, c.tid, c.nr, c.n, strict=True):
            out.counts[row[:3]] += row[3]
        for r2 in zip(p.pid, p.a, p.b, p.nc, p.n, strict=True):
            out.ngram2[r2[:4]] += r2[4]
        for r3 in zip(t.pid, t.a, t.b, t.c, t.n, strict=True):
            out.ngram3[r3[:4]] += r3[4]
        return out


def _tally(*cols: Ints) -> Counter[tuple[int, ...]]:
    if len(cols[0]) == 0:
        return Counter()
    rows, n = np.unique(np.stack([c.astype(np.int64) for c in cols], axis=1), axis=0, return_counts=True)
    return Counter({tuple(int(v) for v in r): int(k) for r, k in zip(rows, n, strict=True)})


def _consecutive(tid: Ints, k: int) -> npt.NDArray[np.bool_]:
    """Start positions of ``k`` consecutive events of one thread (events grouped by thread, in order)."""
    m = len(tid) - k + 1
    if m <= 0:
        return np.zeros(0, bool)
    ok = np.ones(m, bool)
    for j in range(1, k):
        ok &= tid[j : j + m] == tid[:m]
    return ok


def aggregate_events(nr: Ints, tid: Ints, pid: Ints, cheap: Iterable[int]) -> StreamAggregates:
    """The aggregates of events in kernel order (``pid[i]`` the process of thread ``tid[i]``)."""
    nr = np.where((nr < 0) | (nr >= NR_OTHER), NR_OTHER, nr).astype(np.int64)
    order = np.argsort(tid, kind="stable")  # each thread's calls, in their order
    s_nr, s_tid, s_pid = nr[order], np.asarray(tid)[order], np.asarray(pid)[order]
    out = StreamAggregates()
    out.counts.update(_tally(s_pid, s_tid, s_nr))  # type: ignore[arg-type]
    p = _consecutive(s_tid, 2)
    out.ngram2.update(_tally(s_pid[: len(p)][p], s_nr[:-1][p], s_nr[1:][p], np.zeros(int(p.sum()), np.int64)))  # type: ignore[arg-type]
    keep = ~np.isin(s_nr, np.fromiter(cheap, np.int64))
    c_nr, c_tid, c_pid = s_nr[keep], s_tid[keep], s_pid[keep]
    p = _consecutive(c_tid, 2)
    out.ngram2.update(_tally(c_pid[: len(p)][p], c_nr[:-1][p], c_nr[1:][p], np.ones(int(p.sum()), np.int64)))  # type: ignore[arg-type]
    q = _consecutive(c_tid, 3)
    out.ngram3.update(_tally(c_pid[: len(q)][q], c_nr[:-2][q], c_nr[1:-1][q], c_nr[2:][q]))  # type: ignore[arg-type]
    return out
