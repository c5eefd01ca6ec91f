"""Window-level metrics (the paper's seven plus false-positive rate) and the trace-level alert policy."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]
METRICS = ("accuracy", "log_loss", "f1", "precision", "recall", "kappa", "roc_auc", "fpr")
_EPS = 1e-7


def _nan_if_undefined(value: float) -> float:
    return float("nan") if value is None or not math.isfinite(value) else float(value)


def binary_metrics(y: I64, scores: F64, pred: Bool) -> dict[str, float]:
    """The seven paper metrics plus FPR, and the counts. Undefined values (one class only) are NaN."""
    y = np.asarray(y, np.int64)
    pred_i = np.asarray(pred, np.int64)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    out: dict[str, float] = {"n": float(y.size), "positives": float(n_pos), "negatives": float(n_neg)}
    if y.size == 0:
        return {**out, **dict.fromkeys(METRICS, float("nan"))}
    both = n_pos > 0 and n_neg > 0
    fp = int(((pred_i == 1) & (y == 0)).sum())
    out["accuracy"] = float(accuracy_score(y, pred_i))
    out["log_loss"] = float(log_loss(y, np.clip(scores, _EPS, 1 - _EPS), labels=[0, 1]))
    out["f1"] = float(f1_score(y, pred_i, zero_division=0.0)) if n_pos else float("nan")
    out["precision"] = float(precision_score(y, pred_i, zero_division=0.0)) if pred_i.any() else float("nan")
    out["recall"] = float(recall_score(y, pred_i, zero_division=0.0)) if n_pos else float("nan")
    out["kappa"] = _nan_if_undefined(float(cohen_kappa_score(y, pred_i))) if both else float("nan")
    out["roc_auc"] = float(roc_auc_score(y, scores)) if both else float("nan")
    out["fpr"] = fp / n_neg if n_neg else float("nan")
    return out


def roc_points(y: I64, scores: F64, max_points: int = 200) -> dict[str, list[float]]:
    """The ROC curve (false-positive rate, true-positive rate), thinned to at most ``max_points`` corners
    (empty lists when one class is missing)."""
    y = np.asarray(y, np.int64)
    if y.size == 0 or y.min() == y.max():
        return {"fpr": [], "tpr": []}
    fpr, tpr, _ = roc_curve(y, scores, drop_intermediate=True)
    if fpr.size > max_points:
        keep = np.unique(np.linspace(0, fpr.size - 1, max_points).round().astype(np.int64))
        fpr, tpr = fpr[keep], tpr[keep]
    return {"fpr": [round(float(v), 5) for v in fpr], "tpr": [round(float(v), 5) for v in tpr]}


@dataclass(frozen=True)
class AlertPolicy:
    """Alert on a trace when ``k`` of the last ``n`` windows score over the threshold."""

    k: int = 3
    n: int = 5

    def alerts(self, flags: Bool) -> bool:
        f = np.asarray(flags, np.int64)
        if f.size < self.k:
            return False
        c = np.concatenate([[0], np.cumsum(f)])
        idx = np.arange(1, f.size + 1)
        last_n = c[idx] - c[np.maximum(idx - self.n, 0)]
        return bool((last_n >= self.k).any())

    def first_alert(self, flags: Bool) -> int | None:
        """Index of the window at which the alert fires (None: never)."""
        f = np.asarray(flags, np.int64)
        c = np.concatenate([[0], np.cumsum(f)])
        idx = np.arange(1, f.size + 1)
        hit = np.flatnonzero(c[idx] - c[np.maximum(idx - self.n, 0)] >= self.k)
        return int(hit[0]) if hit.size else None

    def __str__(self) -> str:
        return f"{self.k} of the last {self.n} windows"


def trace_metrics(y_runs: I64, alerted: Bool, too_short: Bool) -> dict[str, float]:
    """Per-trace (run) detection: a run is positive when the alert policy fired on it."""
    y = np.asarray(y_runs, np.int64)
    a = np.asarray(alerted, np.bool_)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    tp = int((a & (y == 1)).sum())
    fp = int((a & (y == 0)).sum())
    return {
        "runs": float(y.size),
        "miner_runs": float(n_pos),
        "benign_runs": float(n_neg),
        "accuracy": float((a == (y == 1)).mean()) if y.size else float("nan"),
        "recall": tp / n_pos if n_pos else float("nan"),
        "fpr": fp / n_neg if n_neg else float("nan"),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "miner_runs_too_short": float((np.asarray(too_short, np.bool_) & (y == 1)).sum()),
    }
