"""A model's global feature importance, stored in ``background.npz`` (the scorer ranks inline reasons by it).

Tree models (decision tree, XGBoost) have their own (``feature_importances_``: impurity decrease /
gain). Other models (the MLP) get a permutation importance on a small stratified sample: the mean
absolute change of the miner probability when one column is shuffled. Columns that are constant in
the sample cannot move the score that way and get 0; the shuffles are seeded, so the result is
deterministic.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from minerlens_training.detectors import Detector

F64 = npt.NDArray[np.float64]

_COLUMNS_PER_BATCH = 16


def global_importance(
    detector: Detector, X: npt.ArrayLike, y: npt.ArrayLike, *, sample: int = 200, seed: int = 0
) -> F64:
    """Non-negative importance per feature (not normalised; ``Background`` normalises it to sum 1)."""
    model = detector.pipeline.named_steps["model"]
    native = getattr(model, "feature_importances_", None)
    X32 = np.asarray(X, dtype=np.float32)
    if native is not None and np.asarray(native).shape == (X32.shape[1],):
        return np.clip(np.nan_to_num(np.asarray(native, dtype=np.float64)), 0.0, None)
    return permutation_importance(detector, X32, np.asarray(y, dtype=np.int64), sample=sample, seed=seed)


def permutation_importance(
    detector: Detector, X: npt.NDArray[np.float32], y: npt.NDArray[np.int64], *, sample: int = 200, seed: int = 0
) -> F64:
    """Mean |score change| when each column of a stratified sample of ``X`` is permuted (seeded)."""
    rng = np.random.default_rng(seed)
    rows: list[int] = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        k = min(len(idx), max(1, sample * len(idx) // max(1, len(y))))
        rows += rng.choice(idx, size=k, replace=False).tolist()
    S = X[np.sort(np.asarray(rows, dtype=np.int64))]
    out = np.zeros(X.shape[1], dtype=np.float64)
    if S.shape[0] < 2:
        return out
    base = detector.score(S)
    filled = np.where(np.isnan(S), np.nanmedian(np.where(np.isnan(S).all(axis=0), 0.0, S), axis=0), S)
    varying = np.flatnonzero(np.ptp(filled, axis=0) > 0)
    for lo in range(0, len(varying), _COLUMNS_PER_BATCH):
        cols = varying[lo : lo + _COLUMNS_PER_BATCH]
        block = np.repeat(S[None], len(cols), axis=0)
        for k, j in enumerate(cols):
            block[k, :, j] = S[rng.permutation(S.shape[0]), j]
        scores = detector.score(block.reshape(-1, S.shape[1])).reshape(len(cols), -1)
        out[cols] = np.abs(scores - base[None]).mean(axis=1)
    return out
