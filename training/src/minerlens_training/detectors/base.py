"""The detector interface shared by every model (alibi-detect style).

``BaseDetector`` is the contract: ``fit(X, y)``; ``score(X)`` in [0, 1] (higher = more miner-like);
``infer_threshold(X_benign, fpr)`` picks the threshold on benign scores so that at most ``fpr`` of those
windows score above it; ``predict(X)`` is ``score(X) > threshold``. ``input_kind`` says what ``X`` is:
``features`` (float32 vectors laid out as ``FeatureSpec.names``) or ``sequence`` (syscall ids of each
window, ``Dataset.sequences``).

``Detector`` is the feature-vector family: ``fit`` trains an sklearn ``Pipeline`` (median imputation of
the NaN time features, then the model) whose ``score`` is the miner probability; the same pipeline is
exported to ONNX (``minerlens_training.onnx_export``). The sequence models (LSTM, LSTM autoencoder)
live in ``minerlens_training.sequence``.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.utils.class_weight import compute_sample_weight

from minerlens_training.errors import DatasetError, NotFittedError, ThresholdNotInferredError

F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]
ArrayLike = npt.NDArray[np.floating] | npt.NDArray[np.integer]


def imputer() -> SimpleImputer:
    """NaN (time features of windows without timestamps) -> the training median; all-NaN columns are kept."""
    return SimpleImputer(strategy="median", keep_empty_features=True)


def threshold_for_fpr(benign_scores: F64, fpr: float) -> float:
    """The smallest observed score ``t`` such that ``mean(benign_scores > t) <= fpr``."""
    if not 0.0 <= fpr < 1.0:
        msg = f"fpr must be in [0, 1), got {fpr}"
        raise ValueError(msg)
    s = np.sort(np.asarray(benign_scores, dtype=np.float64))[::-1]
    if s.size == 0:
        msg = "no benign windows to infer a threshold from"
        raise DatasetError(msg)
    allowed = math.floor(fpr * s.size + 1e-9)
    return float(s[min(allowed, s.size - 1)])


InputKind = Literal["features", "sequence"]
ScoreKind = Literal["miner probability", "anomaly score"]


class BaseDetector(ABC):
    """A binary miner detector: the interface every model implements (and the contract tests check)."""

    name: ClassVar[str]
    """registry name (``tree``, ``xgboost``, ``mlp``, ``lstm``, ``lstm-ae``)"""
    kind: ClassVar[str]
    """model family recorded in artifacts"""
    input_kind: ClassVar[InputKind] = "features"
    kind_of_score: ClassVar[ScoreKind] = "miner probability"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.threshold: float | None = None
        self.threshold_fpr: float | None = None

    @abstractmethod
    def fit(self, X: ArrayLike, y: ArrayLike) -> Self:
        """Train on windows ``X`` with labels ``y`` (1 = miner); forgets any threshold."""

    @abstractmethod
    def score(self, X: ArrayLike) -> F64:
        """Score of each window in [0, 1], higher = more miner-like."""

    @property
    @abstractmethod
    def fitted(self) -> bool: ...

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor arguments of this detector (read back from same-named attributes)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {p: getattr(self, p) for p in names if hasattr(self, p)}

    def clone(self) -> Self:
        """A fresh, unfitted detector with the same hyperparameters (out-of-fold calibration refits it)."""
        return type(self)(**self.hyperparameters())

    def infer_threshold(self, X_benign: ArrayLike, fpr: float) -> float:
        """Set (and return) the threshold giving a benign-window false-positive rate <= ``fpr`` on ``X_benign``."""
        self.threshold = threshold_for_fpr(self.score(X_benign), fpr)
        self.threshold_fpr = fpr
        return self.threshold

    def predict(self, X: ArrayLike) -> Bool:
        scores = self.score(X)
        if self.threshold is None:
            msg = f"{self.name}: call infer_threshold() before predict()"
            raise ThresholdNotInferredError(msg)
        return np.asarray(scores > self.threshold, dtype=np.bool_)


class Detector(BaseDetector):
    """A detector over feature vectors (rows laid out as ``FeatureSpec.names``): an sklearn pipeline."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self._pipeline: Pipeline | None = None
        self.n_features: int | None = None

    @abstractmethod
    def _build(self, y: npt.NDArray[np.int64]) -> Pipeline:
        """A fresh, unfitted pipeline whose last step is named ``model`` and has ``predict_proba``."""

    def _uses_sample_weight(self) -> bool:
        return True

    # ---- the interface ----------------------------------------------------------------------------

    def fit(self, X: ArrayLike, y: ArrayLike) -> Self:
        X32 = _matrix(X)
        y64 = np.asarray(y, dtype=np.int64).ravel()
        if X32.shape[0] != y64.shape[0]:
            msg = f"X has {X32.shape[0]} rows, y {y64.shape[0]}"
            raise ValueError(msg)
        if set(np.unique(y64).tolist()) != {0, 1}:
            msg = f"training needs both labels (0 = benign, 1 = miner), got {sorted(set(y64.tolist()))}"
            raise DatasetError(msg)
        pipe = self._build(y64)
        params = {"model__sample_weight": compute_sample_weight("balanced", y64)} if self._uses_sample_weight() else {}
        pipe.fit(X32, y64, **params)
        self._pipeline = pipe
        self.n_features = int(X32.shape[1])
        self.threshold = None
        self.threshold_fpr = None
        return self

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            msg = f"{self.name}: call fit() first"
            raise NotFittedError(msg)
        return self._pipeline

    @property
    def fitted(self) -> bool:
        return self._pipeline is not None

    def score(self, X: ArrayLike) -> F64:
        """Miner probability of each row, in [0, 1]."""
        pipe = self.pipeline
        X32 = _matrix(X)
        if X32.shape[0] == 0:
            return np.zeros(0, np.float64)
        if X32.shape[1] != self.n_features:
            msg = f"{self.name}: X has {X32.shape[1]} features, the model was fitted on {self.n_features}"
            raise ValueError(msg)
        proba = np.asarray(pipe.predict_proba(X32), dtype=np.float64)
        classes = list(pipe.classes_)
        return np.clip(proba[:, classes.index(1)], 0.0, 1.0)


def _matrix(X: ArrayLike) -> npt.NDArray[np.float32]:
    X32 = np.asarray(X, dtype=np.float32)
    if X32.ndim != 2:
        msg = f"X must be 2-D (windows x features), got shape {X32.shape}"
        raise ValueError(msg)
    return X32
