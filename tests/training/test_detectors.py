"""The detector contract, for every model: shapes, range, errors, threshold, ranking quality."""

from __future__ import annotations

import numpy as np
import pytest
from minerlens_training.calibration import Calibration, calibrate
from minerlens_training.datasets import Dataset
from minerlens_training.detectors import DETECTORS, Detector, make_detector, threshold_for_fpr
from minerlens_training.errors import DatasetError, NotFittedError, ThresholdNotInferredError
from sklearn.metrics import roc_auc_score

from tests.training.conftest import FPR, Held


def test_score_shape_and_range(fitted: Detector, dataset: Dataset, held: Held) -> None:
    X = dataset.X[held.test]
    s = fitted.score(X)
    assert s.shape == (X.shape[0],)
    assert s.dtype == np.float64
    assert np.all((s >= 0) & (s <= 1))
    p = fitted.predict(X)
    assert p.shape == (X.shape[0],)
    assert p.dtype == np.bool_
    assert fitted.threshold is not None
    assert np.array_equal(p, s > fitted.threshold)
    assert fitted.score(X[:0]).shape == (0,)


def test_roc_auc_on_held_out_runs_beats_chance(fitted: Detector, dataset: Dataset, held: Held) -> None:
    X, y = dataset.subset(held.test)
    assert roc_auc_score(y, fitted.score(X)) > 0.5


def test_threshold_achieves_the_fpr_on_held_out_benign_windows(fitted: Detector, dataset: Dataset, held: Held) -> None:
    X, y = dataset.subset(held.test)
    benign = X[y == 0]
    det = fitted
    saved = det.threshold, det.threshold_fpr
    try:
        t = det.infer_threshold(benign, FPR)
        assert det.threshold == t
        assert det.threshold_fpr == FPR
        assert det.predict(benign).mean() <= FPR
        assert det.infer_threshold(benign, 0.0) >= det.score(benign).max() - 1e-12
        assert not det.predict(benign).any()
    finally:
        det.threshold, det.threshold_fpr = saved


def test_nan_time_features_are_imputed(fitted: Detector, dataset: Dataset, held: Held) -> None:
    X = dataset.X[held.test].copy()
    X[:, -14:] = np.nan
    s = fitted.score(X)
    assert np.all(np.isfinite(s))
    assert np.all((s >= 0) & (s <= 1))


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_typed_errors_before_fit_and_threshold(name: str, dataset: Dataset) -> None:
    det = make_detector(name)
    with pytest.raises(NotFittedError):
        det.score(dataset.X[:3])
    with pytest.raises(NotFittedError):
        det.infer_threshold(dataset.X[:3], 0.01)
    with pytest.raises(DatasetError):
        det.fit(dataset.X[dataset.y == 0], dataset.y[dataset.y == 0])
    rows = np.concatenate([np.flatnonzero(dataset.y == 0)[:20], np.flatnonzero(dataset.y == 1)[:20]])
    det.fit(dataset.X[rows], dataset.y[rows])
    with pytest.raises(ThresholdNotInferredError):
        det.predict(dataset.X[:3])
    with pytest.raises(ValueError, match="features"):
        det.score(dataset.X[:3, :10])


def test_unknown_detector_name() -> None:
    with pytest.raises(ValueError, match="unknown detector"):
        make_detector("lstm")


def test_threshold_for_fpr_with_ties() -> None:
    s = np.array([0.0] * 90 + [0.5] * 5 + [1.0] * 5)
    t = threshold_for_fpr(s, 0.1)
    assert (s > t).mean() <= 0.1
    assert t == 0.0  # 10 windows may be flagged: everything above 0
    t = threshold_for_fpr(s, 0.07)
    assert t == 0.5
    assert (s > t).mean() == 0.05
    assert (s > threshold_for_fpr(s, 0.0)).sum() == 0
    with pytest.raises(ValueError, match="fpr"):
        threshold_for_fpr(s, 1.5)


@pytest.mark.parametrize("how", ["train", "oof"])
def test_calibration_sets_a_threshold(how: Calibration, dataset: Dataset) -> None:
    det = make_detector("tree").fit(dataset.X, dataset.y)
    t = calibrate(det, dataset.X, dataset.y, dataset.run, 0.05, how)
    assert det.threshold == t
    assert det.threshold_fpr == 0.05
    assert 0.0 <= t <= 1.0
    if how == "train":
        assert det.predict(dataset.X[dataset.y == 0]).mean() <= 0.05
