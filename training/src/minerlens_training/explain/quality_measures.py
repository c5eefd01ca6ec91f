"""The measures of ``minerlens_training.explain.quality``: the deletion/insertion inputs of a window
(``Perturbation``), the area under a curve, top-k overlap and rank correlation of two explanations, and what
one method collects over a model's windows (``MethodQuality``) with its summary."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from minerlens_core.features import VOCAB_SIZE, VOCABULARY
from minerlens_core.schemas.explanations import Explanation

from minerlens_training.explain.base import WindowExplainer
from minerlens_training.explain.tabular import TabularModel

F64 = npt.NDArray[np.float64]
PAD = VOCAB_SIZE


def curve_auc(scores: Sequence[float] | F64, steps: Sequence[int]) -> float:
    """Area under ``scores`` over ``steps`` rescaled to [0, 1] (trapezoids)."""
    x = np.asarray(steps, dtype=np.float64)
    y = np.asarray(scores, dtype=np.float64)
    if len(x) < 2 or x[-1] == x[0]:
        return float(y.mean()) if len(y) else math.nan
    x = (x - x[0]) / (x[-1] - x[0])
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def rank_correlation(a: dict[str, float], b: dict[str, float]) -> float | None:
    """Spearman correlation of two sparse attribution maps over the union of their keys (missing = 0)."""
    from scipy.stats import spearmanr

    keys = sorted(set(a) | set(b))
    if len(keys) < 3:
        return None
    va = [a.get(k, 0.0) for k in keys]
    vb = [b.get(k, 0.0) for k in keys]
    if len(set(va)) < 2 or len(set(vb)) < 2:
        return None
    rho = float(spearmanr(va, vb).statistic)
    return None if math.isnan(rho) else rho


class Perturbation:
    """Deletion/insertion inputs of one window for a model (feature vector or syscall sequence)."""

    def __init__(self, explainer: WindowExplainer, x: npt.NDArray[Any], baseline: npt.NDArray[Any] | None) -> None:
        self.explainer = explainer
        self.sequence = explainer.input_kind == "sequence"
        if self.sequence:
            self.x = np.asarray(x, dtype=np.int64)
            self.base = np.full_like(self.x, PAD)
        else:
            model = getattr(explainer, "model", None)
            if not isinstance(model, TabularModel):
                msg = f"{explainer.method}: no tabular model to perturb"
                raise TypeError(msg)
            self.model = model
            self.x = model.impute(x)[0]
            if baseline is None:
                msg = "faithfulness needs a benign baseline (background.npz)"
                raise ValueError(msg)
            self.base = baseline

    def order(self, explanation: Explanation) -> list[int]:
        """Units (feature indices / syscall ids) the explanation ranks toward miner, in its order."""
        out: list[int] = []
        for c in explanation.contributions:
            if c.direction != "toward_miner":
                continue
            if self.sequence:
                name = c.feature.partition(".")[2]
                if name in _VOCAB_INDEX:
                    out.append(_VOCAB_INDEX[name])
            else:
                j = self.explainer.feature_index(c.feature)
                if j is not None:
                    out.append(j)
        return out

    def units(self) -> npt.NDArray[np.int64]:
        """What a random order permutes: features that differ from the baseline / distinct syscalls."""
        if self.sequence:
            return np.unique(self.x[self.x != PAD]).astype(np.int64)
        return np.flatnonzero(self.x != self.base).astype(np.int64)

    def curves(self, order: Sequence[int], steps: Sequence[int]) -> tuple[F64, F64]:
        rows_del, rows_ins = [], []
        for k in steps:
            chosen = np.asarray(list(order[:k]), dtype=np.int64)
            if self.sequence:
                hit = np.isin(self.x, chosen) & (self.x != PAD)
                rows_del.append(np.where(hit, PAD, self.x))
                rows_ins.append(np.where(hit, self.x, PAD))
            else:
                d, i = self.x.copy(), self.base.copy()
                d[chosen] = self.base[chosen]
                i[chosen] = self.x[chosen]
                rows_del.append(d)
                rows_ins.append(i)
        return self._score(np.stack(rows_del)), self._score(np.stack(rows_ins))

    def _score(self, rows: npt.NDArray[Any]) -> F64:
        if self.sequence:
            return self.explainer.score(rows)
        return self.model.score_imputed(rows)


_VOCAB_INDEX = {n: i for i, n in enumerate(VOCABULARY)}


@dataclass
class MethodQuality:
    method: str
    init_ms: float = 0.0
    cost_ms: list[float] = field(default_factory=list)
    deletion: list[F64] = field(default_factory=list)
    insertion: list[F64] = field(default_factory=list)
    deletion_random: list[F64] = field(default_factory=list)
    insertion_random: list[F64] = field(default_factory=list)
    full_scores: list[float] = field(default_factory=list)
    ranked_units: list[int] = field(default_factory=list)
    jaccard5: list[tuple[str, float]] = field(default_factory=list)
    jaccard10: list[tuple[str, float]] = field(default_factory=list)
    spearman: list[tuple[str, float]] = field(default_factory=list)
    r2: list[float] = field(default_factory=list)
    example: dict[str, Any] | None = None

    def summary(self, steps: Sequence[int]) -> dict[str, Any]:
        def stats(v: Sequence[float]) -> dict[str, float | int | None]:
            a = np.asarray([x for x in v if not math.isnan(x)], dtype=np.float64)
            if a.size == 0:
                return {"n": 0, "mean": None, "p50": None, "p95": None}
            return {
                "n": int(a.size),
                "mean": float(a.mean()),
                "p50": float(np.percentile(a, 50)),
                "p95": float(np.percentile(a, 95)),
            }

        def mean_curve(curves: list[F64]) -> list[float]:
            return np.mean(np.stack(curves), axis=0).tolist() if curves else []

        def by_label(items: list[tuple[str, float]]) -> dict[str, Any]:
            out: dict[str, Any] = {"all": stats([v for _, v in items])}
            for label in sorted({lab for lab, _ in items}):
                out[label] = stats([v for lab, v in items if lab == label])
            return out

        aucs = {
            name: [curve_auc(c, steps) for c in curves]
            for name, curves in (
                ("deletion", self.deletion),
                ("insertion", self.insertion),
                ("deletion_random", self.deletion_random),
                ("insertion_random", self.insertion_random),
            )
        }
        return {
            "method": self.method,
            "init_ms": self.init_ms,
            "cost_ms": stats(self.cost_ms),
            "windows": len(self.deletion),
            "score": stats(self.full_scores),
            "ranked_toward_miner": stats([float(u) for u in self.ranked_units]),
            "auc": {k: stats(v) for k, v in aucs.items()},
            "curves": {
                "steps": list(steps),
                "deletion": mean_curve(self.deletion),
                "insertion": mean_curve(self.insertion),
                "deletion_random": mean_curve(self.deletion_random),
                "insertion_random": mean_curve(self.insertion_random),
            },
            "stability": {
                "pairs": len(self.jaccard10),
                "jaccard5": by_label(self.jaccard5),
                "jaccard10": by_label(self.jaccard10),
                "spearman": by_label(self.spearman),
            },
            "lime_r2": stats(self.r2) if self.r2 else None,
            "example": self.example,
        }
