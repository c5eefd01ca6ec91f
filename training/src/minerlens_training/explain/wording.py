"""Feature names in operator terms: a label per feature and one sentence comparing a value with benign pods.

Every group of ``FeatureSpec.names`` (see docs/features.md) has its own wording:

* ``freq.<s>`` / ``freq_nocheap.<s>``: share of (non-cheap) calls — "sched_yield is 41% of calls
  (benign pods: < 1%)";
* ``cheap_share``: share of the free calls an attacker pads with;
* ``ngram2.<b>`` / ``ngram2_nc.<b>`` / ``ngram3_nc.<b>``: a *hash bucket* of syscall pairs/triples, said
  as such; when the window's syscall ids are known the pairs/triples that fell in the bucket are named;
* ``stat.*`` / ``thread.*``: described (window size, distinct syscalls, entropy in bits, runs, threads
  stuck in one syscall);
* ``rate.*`` / ``iat.*`` / ``time.has_time``: calls per second and gaps in µs.

The benign side comes from ``background.npz`` (5th/50th/95th percentiles of the benign training windows).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from minerlens_core.features import VOCABULARY, FeatureSpec, cheap_mask, ngram_buckets

Fmt = Callable[[float], str]


def share(v: float) -> str:
    """0.41 -> "41%", 0.004 -> "< 1%", 0 -> "0%"."""
    if v <= 0.0:
        return "0%"
    if v < 0.01:
        return "< 1%"
    return f"{v:.0%}"


def number(v: float) -> str:
    """12345.6 -> "12,346", 3.14159 -> "3.14"."""
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def whole(v: float) -> str:
    return f"{round(v):,}"


def per_second(v: float) -> str:
    return f"{number(v)}/s"


def micros(v: float) -> str:
    return f"{number(v)} µs"


def _identity(v: float) -> float:
    return v


def _count_from_log(v: float) -> float:
    return float(10.0**v - 1.0)


@dataclass(frozen=True)
class Wording:
    """How one feature is said: ``label`` (a noun phrase) and ``sentence`` with ``{value}`` in it."""

    label: str
    sentence: str
    fmt: Fmt = number
    transform: Callable[[float], float] = _identity
    benign: bool = True
    """compare with benign pods (False: a flag such as ``time.has_time``)"""


_STAT: dict[str, Wording] = {
    "log_count": Wording("syscalls in the window", "the window has {value} syscalls", whole, transform=_count_from_log),
    "distinct": Wording("distinct syscalls", "{value} distinct syscalls", whole),
    "distinct_nc": Wording("distinct non-cheap syscalls", "{value} distinct non-cheap syscalls", whole),
    "entropy": Wording("syscall entropy (bits)", "syscall entropy is {value} bits (low = repetitive)"),
    "entropy_nc": Wording(
        "non-cheap syscall entropy (bits)", "non-cheap syscall entropy is {value} bits (low = repetitive)"
    ),
    "longest_run": Wording(
        "longest run of one repeated syscall", "the longest run of one repeated syscall is {value} of calls", share
    ),
    "longest_run_nc": Wording(
        "longest run of one repeated non-cheap syscall",
        "the longest run of one repeated non-cheap syscall is {value} of non-cheap calls",
        share,
    ),
    "top_share": Wording(
        "share of the most frequent syscall", "the most frequent syscall{top} is {value} of calls", share
    ),
    "top_share_nc": Wording(
        "share of the most frequent non-cheap syscall",
        "the most frequent non-cheap syscall{top} is {value} of non-cheap calls",
        share,
    ),
}

_TIME: dict[str, Wording] = {
    "time.has_time": Wording(
        "timestamps known", "timestamps known: {value}", lambda v: "yes" if v else "no", benign=False
    ),
    "rate.syscalls_per_s": Wording("syscalls per second", "the syscall rate is {value}", per_second),
    "rate.nocheap_per_s": Wording("non-cheap syscalls per second", "the non-cheap syscall rate is {value}", per_second),
    "iat.median_us": Wording("median gap between syscalls (µs)", "the median gap between syscalls is {value}", micros),
    "iat.p90_us": Wording(
        "90th-percentile gap between syscalls (µs)", "90% of gaps between syscalls are under {value}", micros
    ),
}


class FeatureWording:
    """Labels and value-vs-benign sentences for the features of one ``FeatureSpec``."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        p = spec.params
        self._rates = dict(p.rates)
        self._thread: dict[str, Wording] = {
            "count": Wording("threads", "{value} threads made calls", whole),
            "busiest_share": Wording(
                "share of calls made by the busiest thread", "the busiest thread made {value} of the calls", share
            ),
            "dominated": Wording(
                "threads stuck in one syscall",
                f"{{value}} threads spend > {p.dominated_share:.0%} of their non-cheap calls in one syscall",
                whole,
            ),
            "dominated_share": Wording(
                "share of threads stuck in one syscall",
                f"{{value}} of threads spend > {p.dominated_share:.0%} of their non-cheap calls in one syscall",
                share,
            ),
        }

    def wording(self, name: str) -> Wording:
        group, _, rest = name.partition(".")
        if group == "freq":
            return Wording(f"{rest} share of calls", f"{rest} is {{value}} of calls", share)
        if group == "freq_nocheap":
            return Wording(f"{rest} share of non-cheap calls", f"{rest} is {{value}} of non-cheap calls", share)
        if name == "cheap_share":
            return Wording(
                "share of cheap calls (getpid, nanosleep, ...)",
                "cheap calls (getpid, nanosleep, ...) are {value} of calls",
                share,
            )
        if group in ("ngram2", "ngram2_nc", "ngram3_nc"):
            what = "pairs" if group.startswith("ngram2") else "triples"
            nc = " non-cheap" if group.endswith("_nc") else ""
            return Wording(
                f"syscall {what} in hash bucket {rest}{' (non-cheap)' if nc else ''}",
                f"consecutive{nc} syscall {what} hashed to bucket {rest}{{pairs}} are {{value}} of{nc} {what}",
                share,
            )
        if group == "stat" and rest in _STAT:
            return _STAT[rest]
        if group == "thread" and rest in self._thread:
            return self._thread[rest]
        if name in _TIME:
            return _TIME[name]
        if group == "rate" and rest in self._rates:
            calls = "/".join(self._rates[rest])
            return Wording(f"{calls} calls per second", f"the {calls} rate is {{value}}", per_second)
        return Wording(name, f"{name} = {{value}}")

    def label(self, name: str) -> str:
        return self.wording(name).label

    def benign_range(self, name: str, p05: float | None, median: float | None, p95: float | None) -> str:
        """ "benign pods: < 1%" / "benign pods: median 3%, p95 12%" / "" when unknown."""
        w = self.wording(name)
        if not w.benign or median is None or p95 is None or math.isnan(median) or math.isnan(p95):
            return ""
        lo = w.fmt(w.transform(p05)) if p05 is not None and not math.isnan(p05) else None
        med, hi = w.fmt(w.transform(median)), w.fmt(w.transform(p95))
        if w.fmt is share and p95 < 0.01:
            return f"benign pods: {'0%' if p95 <= 0 else '< 1%'}"
        if med == hi and (lo is None or lo == med):
            return f"benign pods: {med}"
        return f"benign pods: median {med}, p95 {hi}"

    def sentence(
        self,
        name: str,
        value: float | None,
        p05: float | None = None,
        median: float | None = None,
        p95: float | None = None,
        context: WindowIds | None = None,
    ) -> str:
        """One sentence: the value in operator terms, then the benign range in parentheses."""
        w = self.wording(name)
        shown = "unknown" if value is None or math.isnan(value) else w.fmt(w.transform(value))
        pairs = top = ""
        if context is not None:
            group, _, rest = name.partition(".")
            if group in ("ngram2", "ngram2_nc", "ngram3_nc") and rest.isdigit():
                seen = context.bucket_members(group, int(rest))
                pairs = f" (here: {', '.join(seen)})" if seen else ""
            if name in ("stat.top_share", "stat.top_share_nc"):
                top_name = context.top_syscall(nocheap=name.endswith("_nc"))
                top = f" ({top_name})" if top_name else ""
        text = w.sentence.format(value=shown, pairs=pairs, top=top)
        bench = self.benign_range(name, p05, median, p95)
        return f"{text} ({bench})" if bench else text


class WindowIds:
    """The syscall ids of the window being explained: names the members of n-gram buckets and the top syscall."""

    def __init__(self, ids: npt.ArrayLike, spec: FeatureSpec, max_names: int = 2) -> None:
        full = np.asarray(ids, dtype=np.int64).ravel()
        self.full = full[(full >= 0) & (full < len(VOCABULARY))]
        self.nocheap = self.full[~cheap_mask(spec.params)[self.full]]
        self.buckets = spec.params.buckets
        self.max_names = max_names

    def bucket_members(self, group: str, bucket: int) -> list[str]:
        """The most frequent pairs/triples of this window that hash to ``bucket`` ("futex→sched_yield")."""
        n = 2 if group.startswith("ngram2") else 3
        seq = self.nocheap if group.endswith("_nc") else self.full
        if len(seq) < n:
            return []
        b = ngram_buckets(seq, n, self.buckets)
        hits = np.flatnonzero(b == bucket)
        grams = Counter(tuple(int(i) for i in seq[h : h + n]) for h in hits.tolist())
        return ["→".join(VOCABULARY[i] for i in g) for g, _ in grams.most_common(self.max_names)]

    def top_syscall(self, nocheap: bool) -> str:
        seq = self.nocheap if nocheap else self.full
        if len(seq) == 0:
            return ""
        return VOCABULARY[int(np.bincount(seq).argmax())]
