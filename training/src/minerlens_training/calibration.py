"""Where a detector's threshold comes from.

``train``: the scores of the training benign windows. Cheap, but optimistic: a tree or boosted model
scores its own training windows near 0, so the measured FPR on new workloads is far above the target.
``oof``: out-of-fold scores of the training benign windows, from models fitted with whole runs held out
(``GroupKFold`` over runs); the final model is still fitted on all training windows. Costs ``folds``
extra fits.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import GroupKFold

from minerlens_training.detectors import Detector, make_detector, threshold_for_fpr

Calibration = Literal["train", "oof"]
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


def calibrate(det: Detector, X: F32, y: I64, groups: I64, fpr: float, how: Calibration, folds: int = 3) -> float:
    """Set ``det``'s threshold (``det`` is already fitted on ``X, y``) for benign-window FPR ``fpr``."""
    if how == "train":
        return det.infer_threshold(X[y == 0], fpr)
    benign_scores: list[npt.NDArray[np.float64]] = []
    n_groups = len(np.unique(groups))
    for tr, te in GroupKFold(n_splits=min(folds, n_groups)).split(X, y, groups):
        te_benign = te[y[te] == 0]
        if te_benign.size == 0:
            continue
        if len(np.unique(y[tr])) < 2:  # a fold without both labels: fall back to the full model's scores
            benign_scores.append(det.score(X[te_benign]))
            continue
        fold = make_detector(det.name, seed=det.seed).fit(X[tr], y[tr])
        benign_scores.append(fold.score(X[te_benign]))
    det.threshold = threshold_for_fpr(np.concatenate(benign_scores), fpr)
    det.threshold_fpr = fpr
    return det.threshold
