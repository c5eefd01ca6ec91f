"""The detector contract, for every model (feature and sequence): shapes, range, errors, threshold, ranking."""

from __future__ import annotations

import numpy as np
import pytest
from minerlens_training.calibration import Calibration, calibrate
from minerlens_training.datasets import Dataset
from minerlens_training.detectors import (
    DETECTORS,
    FEATURE_DETECTORS,
    BaseDetector,
    make_detector,
    threshold_for_fpr,
)
from minerlens_training.errors import DatasetError, NotFittedError, ThresholdNotInferredError
from sklearn.metrics import roc_auc_score

from tests.training.conftest import FPR, FitModel, Held


def test_registry() -> None:
    assert set(DETECTORS) == {"tree", "xgboost", "mlp", "lstm", "lstm-ae"}
    assert {n: c.input_kind for n, c in DETECTORS.items()} == {
        "tree": "features",
        "xgboost": "features",
        "mlp": "features",
        "lstm": "sequence",
        "lstm-ae": "sequence",
    }
    assert DETECTORS["lstm-ae"].kind_of_score == "anomaly score"


def test_score_shape_and_range(fitted: BaseDetector, dataset: Dataset, held: Held) -> None:
    X = dataset.inputs(fitted.input_kind)[held.test]
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


def test_roc_auc_on_held_out_runs_beats_chance(fitted: BaseDetector, dataset: Dataset, held: Held) -> None:
    X, y = dataset.inputs(fitted.input_kind)[held.test], dataset.y[held.test]
    assert roc_auc_score(y, fitted.score(X)) > 0.5


def test_threshold_achieves_the_fpr_on_held_out_benign_windows(
    fitted: BaseDetector, dataset: Dataset, held: Held
) -> None:
    X, y = dataset.inputs(fitted.input_kind)[held.test], dataset.y[held.test]
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


@pytest.mark.parametrize("name", FEATURE_DETECTORS)
def test_nan_time_features_are_imputed(name: str, fit_model: FitModel, dataset: Dataset, held: Held) -> None:
    fitted = fit_model(name)
    X = dataset.X[held.test].copy()
    X[:, -14:] = np.nan
    s = fitted.score(X)
    assert np.all(np.isfinite(s))
    assert np.all((s >= 0) & (s <= 1))


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_typed_errors_before_fit_and_threshold(name: str, dataset: Dataset) -> None:
    det = make_detector(name, **({"epochs": 1} if DETECTORS[name].input_kind == "sequence" else {}))
    X = dataset.inputs(det.input_kind)
    other = dataset.inputs("sequence" if det.input_kind == "features" else "features")
    with pytest.raises(NotFittedError):
        det.score(X[:3])
    with pytest.raises(NotFittedError):
        det.infer_threshold(X[:3], 0.01)
    with pytest.raises(DatasetError):  # no benign window: nothing can be learnt (nor a threshold set)
        det.fit(X[dataset.y == 1], dataset.y[dataset.y == 1])
    rows = np.concatenate([np.flatnonzero(dataset.y == 0)[:20], np.flatnonzero(dataset.y == 1)[:20]])
    det.fit(X[rows], dataset.y[rows])
    with pytest.raises(ThresholdNotInferredError):
        det.predict(X[:3])
    with pytest.raises(ValueError, match="features"):  # the other kind of input is refused with a clear message
        det.score(other[:3])
    with pytest.raises(ValueError, match="2-D"):
        det.score(X[0])


def test_clone_keeps_hyperparameters_and_forgets_the_fit(fit_model: FitModel) -> None:
    for name in DETECTORS:
        det = fit_model(name)
        twin = det.clone()
        assert type(twin) is type(det)
        assert twin.hyperparameters() == det.hyperparameters()
        assert not twin.fitted
        assert twin.threshold is None


def test_unknown_detector_name() -> None:
    with pytest.raises(ValueError, match="unknown detector"):
        make_detector("svm")


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
