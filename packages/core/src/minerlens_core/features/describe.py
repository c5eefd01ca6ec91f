"""Windows and features in operator terms: the only wording of feature names in minerlens.

The scorer's inline reasons and the explanations (SHAP, LIME, autoencoder) both say things through
this module, so one feature reads the same in an alert and in an explanation.

* ``behaviour_summary`` (``WindowDescriber.summary``): one sentence with quantities from a window's
  feature vector: cores busy, syscalls/s and per CPU-second, threads and runnable threads, memory and
  huge pages, open sockets and socket/file I/O, the top syscalls. A value that is NaN or absent from
  the spec is said to be unknown, never guessed; version-1 specs (no ``res.*``/``io.*``) and count
  windows without timestamps (no rates) are described with what they have.
* ``FeatureWording`` (``wording``): label, value, benign range and one sentence for every feature name of
  every spec version ("sched_yield is 41% of calls (benign pods: 0%)").
* ``WindowIds`` (``window_ids``): the window's own syscalls (or, without them, its ``freq.*`` values) name
  the pairs/triples behind a hashed n-gram feature; a bare bucket number is never a reason.

This module is the wording's one import point: it re-exports the names of ``wording`` and ``window_ids``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from minerlens_core.features.spec import FeatureParams, FeatureSpec
from minerlens_core.features.vocabulary import VOCABULARY
from minerlens_core.features.window_ids import F64, NGRAM_GROUPS, WindowIds
from minerlens_core.features.wording import (
    DASH,
    FeatureWording,
    Unit,
    Wording,
    cores,
    finite,
    from_log,
    is_share,
    megabytes,
    num,
    plural,
    share,
    whole,
)
from minerlens_core.schemas.windows import ProcessRef
from minerlens_core.syscalls.io import FD_DATA_SYSCALLS, FILE_ONLY, SOCKET_ONLY

__all__ = [
    "DASH",
    "NGRAM_GROUPS",
    "SUMMARY_BENIGN",
    "FeatureWording",
    "Unit",
    "WindowDescriber",
    "WindowIds",
    "Wording",
    "behaviour_summary",
    "cores",
    "from_log",
    "is_share",
    "megabytes",
    "num",
    "share",
]

SUMMARY_BENIGN = ("res.log_syscalls_per_cpu_s", "rate.syscalls_per_s")
"""Features whose benign range the summary quotes (pass them as ``benign`` to ``WindowDescriber``)."""


# ---- one sentence per window ---------------------------------------------------------------------


@dataclass
class _Facts:
    """Feature values of one window by name (NaN: unknown or not in the spec)."""

    x: F64
    index: Mapping[str, int]

    def __call__(self, name: str) -> float:
        i = self.index.get(name)
        return float(self.x[i]) if i is not None else math.nan

    def has(self, name: str) -> bool:
        return name in self.index


class WindowDescriber:
    """Behaviour sentences for vectors laid out as ``names`` (build once per spec, reuse per window).

    ``benign`` maps ``SUMMARY_BENIGN`` feature names to their benign (p05, p95), e.g. from an artifact's
    ``background.npz``; the summary then compares the syscall rate per CPU-second with benign pods.
    """

    def __init__(
        self,
        names: Sequence[str],
        params: FeatureParams | FeatureSpec | None = None,
        benign: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        self.names = tuple(names)
        self.wording = FeatureWording(params)
        self.params = self.wording.params
        self._index = {n: i for i, n in enumerate(self.names)}
        self.benign = dict(benign or {})
        freq = [(i, n[5:]) for i, n in enumerate(self.names) if n.startswith("freq.")]
        self._freq_cols = np.array([i for i, _ in freq], dtype=np.int64)
        self._freq_names = [s for _, s in freq]
        self._ambiguous = [f"freq.{c}" for c in sorted(FD_DATA_SYSCALLS - SOCKET_ONLY - FILE_ONLY)]
        """fd I/O calls whose name says neither socket nor file (read, write, ...)"""

    def summary(
        self,
        x: npt.ArrayLike,
        *,
        ids: npt.ArrayLike | None = None,
        process: ProcessRef | None = None,
        scope: str = "stream",
    ) -> str:
        """One sentence on what the window's pod (or process) did, with quantities."""
        v = np.asarray(x, dtype=np.float64).ravel()
        if len(v) != len(self.names):
            msg = f"a vector of {len(v)} values for {len(self.names)} feature names"
            raise ValueError(msg)
        f = _Facts(v, self._index)
        res = f.has("res.has") and f("res.has") == 1.0
        parts = [self._activity(f, res)]
        parts += [p for p in (self._threads(f, res), self._memory(f, res), self._io(f, res)) if p]
        unknown = [] if res else ["CPU", "memory", "open sockets"]
        if not f.has("io.socket_share"):
            unknown.append("socket vs file I/O")
        if unknown:
            why = "no resource samples" if f.has("res.has") and not res else "not measured"
            listed = ", ".join(unknown[:-1]) + " and " + unknown[-1] if len(unknown) > 1 else unknown[0]
            parts.append(f"{listed} unknown ({why})")
        top = self._top_syscalls(v, ids)
        if top:
            parts.append(f"top syscalls: {top}")
        text = "; ".join(parts) + "."
        if process is not None:
            who = _process_text(process)
            if scope == "process":
                return f"Process {who}: {text}"
            text = f"{text[:-1]}; busiest process {who}."
        return text[0].upper() + text[1:]

    # --- clauses ----------------------------------------------------------------------------------

    def _activity(self, f: _Facts, res: bool) -> str:
        n = whole(from_log(f("stat.log_count")))
        rate = f("rate.syscalls_per_s")
        cpu = f("res.cpu_cores") if res else math.nan
        if math.isnan(n) and math.isnan(rate):
            calls = "syscalls unknown"
        elif n == 0 or (math.isnan(n) and rate == 0):
            calls = "no syscalls"
        elif math.isfinite(rate):
            shown = num(rate)
            calls = f"{shown} {'syscall' if shown == '1' else 'syscalls'}/s" + self._rate_context(f, cpu, rate)
        else:
            calls = f"{plural(n, 'syscall', 'syscalls')} (no timestamps, so no rates)"
        if not res:
            return calls
        if math.isnan(cpu):
            return f"CPU unknown (too few resource samples) while making {calls}"
        busy = f"{cores(cpu)} cores busy"
        thr = f("res.throttled_cores")
        if finite(thr) and thr >= 0.01:
            busy += f" ({cores(thr)} cores throttled by the quota)"
        return f"{busy} while making {calls}"

    def _rate_context(self, f: _Facts, cpu: float, rate: float) -> str:
        """Syscalls per CPU-second (comparable across pods of any CPU use) against benign pods."""
        per = from_log(f("res.log_syscalls_per_cpu_s"))
        if finite(cpu) and cpu >= 0.05 and finite(per) and rate > 0:
            bench = self._bench("res.log_syscalls_per_cpu_s")
            return f" ({num(per)} per CPU-second" + (f"; {bench}" if bench else "") + ")"
        bench = self._bench("rate.syscalls_per_s")
        return f" ({bench})" if bench else ""

    def _bench(self, name: str) -> str:
        lo_hi = self.benign.get(name)
        return self.wording.benign_range(name, lo_hi[0], p95=lo_hi[1]) if lo_hi else ""

    @staticmethod
    def _threads(f: _Facts, res: bool) -> str:
        if res and finite(f("res.threads")):
            t, run, procs = f("res.threads"), f("res.running"), f("res.processes")
            text = plural(t, "thread", "threads")
            if finite(run):
                text += f" ({num(run)} runnable)"
            if finite(procs) and procs > 1:
                text += f" in {num(procs)} processes"
            return text
        tc = f("thread.count")
        if finite(tc) and tc > 0:
            return f"{plural(tc, 'thread', 'threads')} made calls"
        return ""

    @staticmethod
    def _memory(f: _Facts, res: bool) -> str:
        if not res:
            return ""
        mem, huge = from_log(f("res.log_memory_mb")), from_log(f("res.log_hugetlb_mb"))
        parts = []
        if finite(mem):
            parts.append(f"{megabytes(mem)} memory")
        if finite(huge):
            parts.append(f"{megabytes(huge)} in huge pages" if huge >= 0.5 else "no huge pages")
        return ", ".join(parts)

    def _io(self, f: _Facts, res: bool) -> str:
        parts = []
        if res and finite(f("res.sockets_inet")):
            parts.append(f"{plural(f('res.sockets_inet'), 'TCP/UDP socket', 'TCP/UDP sockets')} open")
            other = f("res.sockets_other")
            if finite(other) and other > 0:
                parts.append(f"{plural(other, 'other socket', 'other sockets')} open")
            files = f("res.files")
            if finite(files):
                parts.append(f"{plural(files, 'file', 'files')} open")
        if not f.has("io.socket_share"):
            return ", ".join(parts)
        n = whole(from_log(f("stat.log_count")))
        cheap = f("cheap_share")
        nc = n * (1.0 - cheap) if finite(cheap) else n
        has_kind = f("io.has_fd_kind") == 1.0
        for what, share_name, rate_name in (
            ("socket", "io.socket_share", "io.socket_per_s"),
            ("file", "io.file_share", "io.file_per_s"),
        ):
            k = _calls(f(share_name), nc)
            if math.isnan(k) or k == 0:
                parts.append(f"{'0' if k == 0 else 'unknown'} {what} I/O")
                continue
            extra = []
            rate = f(rate_name)
            if finite(rate):
                extra.append(f"{num(rate)}/s")
            if what == "socket" and has_kind:
                inet = _calls(f("io.inet_share"), nc)
                if finite(inet):
                    extra.append(f"{num(inet)} on TCP/UDP")
            text = plural(k, f"{what} I/O call", f"{what} I/O calls")
            parts.append(text + (f" ({', '.join(extra)})" if extra else ""))
        if not has_kind:
            k = _calls(sum(f(c) for c in self._ambiguous), n)
            if k > 0:
                parts.append(f"{plural(k, 'read/write call', 'read/write calls')} on fds of unknown kind")
        return ", ".join(parts)

    def _top_syscalls(self, v: F64, ids: npt.ArrayLike | None, k: int = 3) -> str:
        if len(self._freq_cols):
            shares = np.nan_to_num(v[self._freq_cols], nan=0.0, posinf=0.0, neginf=0.0)
            order = np.argsort(-shares, kind="stable")[:k]
            return ", ".join(f"{self._freq_names[j]} {share(float(shares[j]))}" for j in order if shares[j] > 0)
        if ids is not None:
            w = WindowIds(ids, self.params)
            if len(w.full):
                counts = np.bincount(w.full)
                order = np.argsort(-counts, kind="stable")[:k]
                total = len(w.full)
                return ", ".join(f"{VOCABULARY[j]} {share(counts[j] / total)}" for j in order if counts[j] > 0)
        return ""


def _calls(s: float, nc: float) -> float:
    if not (finite(s) and finite(nc)):
        return math.nan
    k = max(s, 0.0) * nc
    return float(round(k)) if abs(k) < 1e15 else k


def _process_text(p: ProcessRef) -> str:
    detail = [f"pid {p.pid}"]
    if p.exe:
        detail.append(p.exe if len(p.exe) <= 120 else "..." + p.exe[-117:])
    if p.cpu_cores is not None:
        detail.append(f"{cores(p.cpu_cores)} cores")
    return f"{p.comm or 'unnamed'} ({', '.join(detail)})"


@lru_cache(maxsize=8)
def _describer(names: tuple[str, ...], params: FeatureParams | None) -> WindowDescriber:
    return WindowDescriber(names, params)


def behaviour_summary(
    x: npt.ArrayLike,
    names: Sequence[str],
    *,
    ids: npt.ArrayLike | None = None,
    process: ProcessRef | None = None,
    scope: str = "stream",
    params: FeatureParams | None = None,
    benign: Mapping[str, tuple[float, float]] | None = None,
) -> str:
    """One sentence on a window from its feature vector ``x`` laid out as ``names`` (see ``WindowDescriber``).

    "2.0 cores busy while making 20 syscalls/s (10 per CPU-second; benign pods: 150-4,500 syscalls per
    CPU-second); 3 threads (2.0 runnable); 256 MB memory, no huge pages; 1 TCP/UDP socket open, ...;
    top syscalls: epoll_wait 50%, read 50%."
    """
    d = WindowDescriber(names, params, benign) if benign else _describer(tuple(names), params)
    return d.summary(x, ids=ids, process=process, scope=scope)
