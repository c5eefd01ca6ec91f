"""Inline reasons: which features of a window are most unlike benign pods, weighted by model importance.

numpy only, from the artifact's ``background.npz`` (benign p05/p50/p95 per feature and the model's global
importance). A feature's weight is ``importance x log1p(distance outside [p05, p95] / scale)``; the top
few become sentences an operator can read ("sched_yield 41% of calls (benign pods: < 1%)"). This is a
cheap triage hint, not an attribution: the explainer service computes SHAP/LIME on demand.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from minerlens_core.features import VOCAB_SIZE, VOCABULARY, ngram_buckets
from minerlens_core.models import Background
from minerlens_core.schemas.windows import Reason

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

_SKIP = frozenset({"time.has_time"})
_SHARE_PREFIXES = ("freq.", "freq_nocheap.", "ngram2.", "ngram2_nc.", "ngram3_nc.")
_SHARES = frozenset(
    {
        "cheap_share",
        "stat.longest_run",
        "stat.longest_run_nc",
        "stat.top_share",
        "stat.top_share_nc",
        "thread.busiest_share",
        "thread.dominated_share",
    }
)


def is_share(name: str) -> bool:
    """Features that are fractions in [0, 1] (shown as percentages)."""
    return name in _SHARES or name.startswith(_SHARE_PREFIXES)


def _pct(v: float) -> str:
    p = 100 * v
    if 0 < p < 0.1:
        return "< 0.1%"
    if 0 < p < 1:
        return f"{p:.1f}%"
    return f"{p:.0f}%"


def _num(v: float) -> str:
    a = abs(v)
    if a >= 100 or float(v).is_integer():
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.1f}"
    return f"{v:.2g}"


def benign_range(name: str, lo: float, hi: float) -> str:
    """How benign pods look for this feature, e.g. "< 1%", "2-9%", "0-3 threads"."""
    if math.isnan(lo) or math.isnan(hi):
        return "unknown"
    if name == "stat.log_count" and hi < 300:
        lo, hi = 10**lo - 1, 10**hi - 1
    if is_share(name):
        if hi < 0.01:
            return "< 1%" if hi > 0 else "0%"
        if round(100 * lo) == round(100 * hi):
            return _pct(lo)
        return f"{100 * lo:.0f}-{100 * hi:.0f}%"
    if _num(lo) == _num(hi):
        return _num(lo)
    return f"{_num(lo)}-{_num(hi)}"


_TEXTS = {
    "stat.log_count": "{v} syscalls in the window",
    "stat.distinct": "{v} distinct syscalls",
    "stat.distinct_nc": "{v} distinct non-trivial syscalls",
    "stat.entropy": "syscall entropy {f} bits",
    "stat.entropy_nc": "non-trivial syscall entropy {f} bits",
    "stat.longest_run": "longest run of one syscall {p} of the window",
    "stat.longest_run_nc": "longest run of one non-trivial syscall {p} of them",
    "stat.top_share": "the most frequent syscall makes {p} of calls",
    "stat.top_share_nc": "the most frequent non-trivial syscall makes {p} of them",
    "thread.count": "{v} threads calling",
    "thread.busiest_share": "the busiest thread makes {p} of calls",
    "thread.dominated": "{v} threads stuck in one syscall",
    "thread.dominated_share": "{p} of threads stuck in one syscall",
    "rate.syscalls_per_s": "{v} syscalls/s",
    "rate.nocheap_per_s": "{v} non-trivial syscalls/s",
    "iat.median_us": "median gap between calls {v} us",
    "iat.p90_us": "90th-percentile gap between calls {v} us",
}


def describe(name: str, value: float, lo: float, hi: float) -> str:
    """One sentence: the feature's value in operator terms and the benign range."""
    group, _, rest = name.partition(".")
    base = f"(benign pods: {benign_range(name, lo, hi)})"
    if group == "freq":
        return f"{rest} {_pct(value)} of calls {base}"
    if group == "freq_nocheap":
        return f"{rest} {_pct(value)} of non-trivial calls {base}"
    if name == "cheap_share":
        return f"trivial calls (getpid, clock_gettime, sleeps...) {_pct(value)} of calls {base}"
    if group in ("ngram2", "ngram2_nc"):
        nc = " of non-trivial calls" if group.endswith("_nc") else ""
        return f"syscall pair pattern #{rest} in {_pct(value)} of consecutive pairs{nc} {base}"
    if group == "ngram3_nc":
        return f"syscall triple pattern #{rest} in {_pct(value)} of consecutive triples {base}"
    text = _TEXTS.get(name)
    if text is not None:
        shown = 10**value - 1 if name == "stat.log_count" and value < 300 else value
        return text.format(v=_num(shown), p=_pct(value), f=f"{value:.2f}") + f" {base}"
    if group == "rate":
        return f"{rest} {_num(value)} calls/s {base}"
    return f"{name} = {_num(value)} {base}"


class ReasonRanker:
    """Rank features of many windows at once against an artifact's benign background."""

    def __init__(self, background: Background, names: Sequence[str], top: int = 5, buckets: int = 128) -> None:
        if tuple(background.feature_names) != tuple(names):
            msg = "background.npz feature names differ from the model's feature names"
            raise ValueError(msg)
        self.names = tuple(names)
        self.top = top
        self.buckets = buckets
        self.lo = background.benign_p05.astype(np.float64)
        self.hi = background.benign_p95.astype(np.float64)
        self.median = background.benign_median.astype(np.float64)
        width = self.hi - self.lo
        floor = np.array([0.01 if is_share(n) else 1.0 for n in self.names])  # 1 point / 1 call/s / 1 thread
        with np.errstate(invalid="ignore"):
            self.scale = np.fmax(np.fmax(width, 0.1 * np.abs(self.median)), floor)
        imp = np.clip(np.nan_to_num(background.importance.astype(np.float64)), 0, None)
        self.uniform_importance = not imp.sum() > 0
        weight = np.ones(len(self.names)) / len(self.names) if self.uniform_importance else imp / imp.sum()
        known = ~(np.isnan(self.lo) | np.isnan(self.hi))
        skip = np.array([n in _SKIP for n in self.names])
        self.weight: F64 = np.where(known & ~skip, weight, 0.0)
        self.cols = np.flatnonzero(self.weight > 0)
        """only features the model uses can be reasons: the rest is never computed"""
        self._w, self._lo, self._hi, self._scale = (a[self.cols] for a in (self.weight, self.lo, self.hi, self.scale))

    def _seen(self, name: str, sequence: Sequence[int] | None) -> str:
        """' (here: poll→recvfrom, ...)' for a no-cheap n-gram bucket, from the window's own syscalls."""
        group, _, bucket = name.partition(".")
        n = {"ngram2_nc": 2, "ngram3_nc": 3}.get(group)
        if n is None or not sequence or not bucket.isdigit():
            return ""
        ids = np.asarray(sequence, dtype=np.int64)
        ids = ids[(ids >= 0) & (ids < VOCAB_SIZE)]
        hits = np.flatnonzero(ngram_buckets(ids, n, self.buckets) == int(bucket))
        grams = Counter("→".join(VOCABULARY[int(i)] for i in ids[h : h + n]) for h in hits.tolist())
        return f" (here: {', '.join(g for g, _ in grams.most_common(2))})" if grams else ""

    def weights(self, X: F32 | F64) -> F64:
        """``(n, dim)`` non-negative reason weights (0 inside the benign range or for unknown values)."""
        x = np.asarray(X, dtype=np.float64)
        out = np.zeros(x.shape, dtype=np.float64)
        out[:, self.cols] = self._weights(x[:, self.cols])
        return out

    def _weights(self, x: F64) -> F64:
        with np.errstate(invalid="ignore"):
            excess = np.fmax(x - self._hi, 0.0) + np.fmax(self._lo - x, 0.0)
        out: F64 = self._w * np.log1p(np.nan_to_num(excess, nan=0.0) / self._scale)
        return out

    def reasons(self, X: F32 | F64, sequences: Sequence[Sequence[int]] | None = None) -> list[list[Reason]]:
        """The top reasons of each row of ``X`` (possibly fewer, or none when every value looks benign).

        ``sequences`` (the windows' non-cheap syscall ids) name the calls behind a hashed n-gram bucket.
        """
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0 or self.top == 0 or len(self.cols) == 0:
            return [[] for _ in range(x.shape[0] if x.ndim == 2 else 0)]
        sub = x[:, self.cols]
        w = self._weights(sub)
        k = min(self.top, w.shape[1])
        idx = np.argpartition(-w, k - 1, axis=1)[:, :k]
        out: list[list[Reason]] = []
        for row in range(x.shape[0]):
            reasons = []
            for j in sorted(idx[row].tolist(), key=lambda j: -w[row, j]):
                weight = float(w[row, j])
                if weight <= 0:
                    continue
                c = int(self.cols[j])
                value, name, median = float(sub[row, j]), self.names[c], float(self.median[c])
                reasons.append(
                    Reason.model_construct(  # values built here: skip validation on the hot path
                        feature=name,
                        value=value,
                        baseline=None if math.isnan(median) else median,
                        contribution=round(weight, 6),
                        text=describe(name, value, float(self.lo[c]), float(self.hi[c]))
                        + self._seen(name, None if sequences is None else sequences[row]),
                    )
                )
            out.append(reasons)
        return out
