"""Where a detector's threshold comes from.

``train``: the scores of the training benign windows. Cheap, but optimistic: a tree or boosted model
scores its own training windows near 0, so the measured FPR on new workloads is far above the target.
``oof``: out-of-fold scores of the training benign windows, from models fitted with whole runs held out
(``GroupKFold`` over runs); the final model is still fitted on all training windows. Costs ``folds``
extra fits.
``oof-family``: the same with whole *families* held out in the folds: the threshold then reflects how
benign families the model has not seen score, which is what a leave-one-family-out test measures.
With fewer than two groups (runs or families) in the training part, ``oof`` falls back to ``train``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import GroupKFold

from minerlens_training.datasets import Dataset
from minerlens_training.detectors import BaseDetector, threshold_for_fpr
from minerlens_training.errors import DatasetError

Calibration = Literal["train", "oof", "oof-family"]
CALIBRATIONS: tuple[Calibration, ...] = ("oof", "oof-family", "train")
I64 = npt.NDArray[np.int64]
Inputs = npt.NDArray[np.float32] | npt.NDArray[np.integer]


def calibrate(
    det: BaseDetector,
    X: Inputs,
    y: I64,
    groups: I64,
    fpr: float,
    how: Calibration,
    folds: int = 3,
    eligible: npt.NDArray[np.bool_] | None = None,
) -> float:
    """Set ``det``'s threshold (``det`` is already fitted on ``X, y``) for benign-window FPR ``fpr``.

    ``X`` is what ``det`` reads (feature vectors or sequences); the fold models are ``det.clone()``s.
    ``eligible``: the windows that can alert at all (not closed by a decision gate): the FPR is measured on the
    benign ones among them (default: every window).
    """
    ok = np.ones(len(y), np.bool_) if eligible is None else np.asarray(eligible, np.bool_)
    benign = (y == 0) & ok
    n_groups = len(np.unique(groups))
    if how == "train" or n_groups < 2:
        return det.infer_threshold(X[benign], fpr)
    benign_scores: list[npt.NDArray[np.float64]] = []
    for tr, te in GroupKFold(n_splits=min(folds, n_groups)).split(X, y, groups):
        te_benign = te[benign[te]]
        if te_benign.size == 0:
            continue
        try:
            fold = det.clone().fit(X[tr], y[tr])
        except DatasetError:  # a fold the model cannot be fitted on (one label only): the full model's scores
            benign_scores.append(det.score(X[te_benign]))
            continue
        benign_scores.append(fold.score(X[te_benign]))
    if not benign_scores:  # no benign window in the training part: nothing to calibrate on out of fold
        return det.infer_threshold(X[benign], fpr)
    det.threshold = threshold_for_fpr(np.concatenate(benign_scores), fpr)
    det.threshold_fpr = fpr
    return det.threshold


def calibration_groups(ds: Dataset, rows: I64, how: Calibration) -> I64:
    """The out-of-fold groups of ``rows``: their run (``oof``, ``train``) or their family (``oof-family``)."""
    if how != "oof-family":
        return ds.run[rows]
    families = sorted({r.family for r in ds.runs})
    code = np.array([families.index(r.family) for r in ds.runs] or [0], np.int64)
    return code[ds.run[rows]]
