"""Inline reasons: a behaviour summary, then the features of a window most unlike benign pods.

numpy only, from the artifact's ``background.npz`` (benign p05/p50/p95 per feature and the model's global
importance). A feature's weight is ``importance x log1p(distance outside [p05, p95] / scale)``; the top
few become sentences an operator can read ("sched_yield is 41% of calls (benign pods: 0%)"). Every
sentence comes from the feature library's wording (``minerlens_core.features.describe``), the same one
explanations use. The first reason of every miner verdict is the window's behaviour in one sentence
(feature ``summary``, its contribution the sum of the feature reasons' weights so that it sorts first).
This is a cheap triage hint, not an attribution: the explainer service computes SHAP/LIME on demand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from minerlens_core.features import FeatureParams, FeatureWording, WindowDescriber, WindowIds
from minerlens_core.features.describe import NGRAM_GROUPS, SUMMARY_BENIGN, is_share
from minerlens_core.models import Background
from minerlens_core.schemas.windows import ProcessRef, Reason, Scope

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

SUMMARY = "summary"
"""``Reason.feature`` of the behaviour sentence"""
_SAME_SYSCALL = ("freq.", "freq_nocheap.", "rate.")


class ReasonRanker:
    """Rank features of many windows at once against an artifact's benign background."""

    def __init__(
        self,
        background: Background,
        names: Sequence[str],
        top: int = 5,
        buckets: int = 128,
        params: FeatureParams | None = None,
    ) -> None:
        if tuple(background.feature_names) != tuple(names):
            msg = "background.npz feature names differ from the model's feature names"
            raise ValueError(msg)
        self.names = tuple(names)
        self.top = top
        self.params = params or FeatureParams(buckets=buckets)
        self.buckets = self.params.buckets
        self.wording = FeatureWording(self.params)
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
        flags = np.array([not self.wording.wording(n).benign for n in self.names], dtype=np.bool_)
        self.weight: F64 = np.where(known & ~flags, weight, 0.0)
        self.cols = np.flatnonzero(self.weight > 0)
        """only features the model uses can be reasons: the rest is never computed"""
        self._w, self._lo, self._hi, self._scale = (a[self.cols] for a in (self.weight, self.lo, self.hi, self.scale))
        index = {n: i for i, n in enumerate(self.names)}
        benign = {
            n: (float(self.lo[index[n]]), float(self.hi[index[n]]))
            for n in SUMMARY_BENIGN
            if n in index and known[index[n]]
        }
        self.describer = WindowDescriber(self.names, self.params, benign)

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

    def reasons(
        self,
        X: F32 | F64,
        sequences: Sequence[Sequence[int]] | None = None,
        processes: Sequence[ProcessRef | None] | None = None,
        scopes: Sequence[Scope] | None = None,
    ) -> list[list[Reason]]:
        """The reasons of each row of ``X``: the behaviour summary, then up to ``top`` feature reasons (none at all
        when ``top`` is 0).

        ``sequences`` (the windows' non-cheap syscall ids) name the calls behind a hashed n-gram bucket
        (without them, the pairs of the window's most frequent syscalls that hash there are given, as a
        guess); ``processes`` / ``scopes`` name the process in the summary.
        """
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0 or self.top == 0:
            return [[] for _ in range(x.shape[0] if x.ndim == 2 else 0)]
        w = self._weights(x[:, self.cols]) if len(self.cols) else np.zeros((x.shape[0], 0))
        out: list[list[Reason]] = []
        for row in range(x.shape[0]):
            seq = None if sequences is None else sequences[row]
            features = self._features(x[row], w[row], seq)
            process = None if processes is None else processes[row]
            scope = "stream" if scopes is None else scopes[row]
            summary = Reason.model_construct(  # values built here: skip validation on the hot path
                feature=SUMMARY,
                value=None,
                baseline=None,
                contribution=round(sum(r.contribution for r in features), 6),
                text=self.describer.summary(x[row], ids=seq, process=process, scope=scope),
            )
            out.append([summary, *features])
        return out

    def _features(self, x: F64, w: F64, sequence: Sequence[int] | None) -> list[Reason]:
        """Up to ``top`` feature reasons of one row, heaviest first; one reason per syscall or n-gram."""
        if len(w) == 0:
            return []
        k = min(2 * self.top, len(w))
        idx = np.argpartition(-w, k - 1)[:k]
        context: WindowIds | None = None
        seen: set[str] = set()
        reasons: list[Reason] = []
        for j in sorted(idx.tolist(), key=lambda j: -w[j]):
            weight = float(w[j])
            if weight <= 0 or len(reasons) >= self.top:
                break
            c = int(self.cols[j])
            name, value, median = self.names[c], float(x[c]), float(self.median[c])
            group = name.partition(".")[0]
            if group in NGRAM_GROUPS and context is None:
                context = WindowIds(sequence, self.params, vector=x, names=self.names)
            key = self._topic(name, context)
            if key in seen:  # freq.poll after freq_nocheap.poll: the same reason said twice
                continue
            seen.add(key)
            reasons.append(
                Reason.model_construct(
                    feature=name,
                    value=value,
                    baseline=None if math.isnan(median) else median,
                    contribution=round(weight, 6),
                    text=self.wording.sentence(name, value, float(self.lo[c]), median, float(self.hi[c]), context),
                )
            )
        return reasons

    @staticmethod
    def _topic(name: str, context: WindowIds | None) -> str:
        """What a reason is about: a syscall (freq/freq_nocheap/rate of it), the n-gram it names, or itself."""
        if name.startswith(_SAME_SYSCALL):
            return "syscall:" + name.partition(".")[2]
        group, _, bucket = name.partition(".")
        if context is not None and group in NGRAM_GROUPS and bucket.isdigit():
            members, _ = context.ngram_members(group, int(bucket))
            if members:
                return f"{NGRAM_GROUPS[group]}gram:{members[0]}"
        return name
