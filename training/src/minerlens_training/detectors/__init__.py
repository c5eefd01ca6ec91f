"""Detectors: one interface (``BaseDetector``), five models, a registry by name.

Feature-vector models (``Detector``: sklearn pipelines): ``tree``, ``xgboost``, ``mlp``. Sequence models
(``detectors.sequence``; their torch modules, export and artifacts in ``minerlens_training.sequence``, torch
imported lazily): ``lstm``, ``lstm-ae``.
"""

from __future__ import annotations

from typing import Any

from minerlens_training.detectors.base import BaseDetector, Detector, InputKind, ScoreKind, threshold_for_fpr
from minerlens_training.detectors.models import DecisionTreeDetector, MLPDetector, XGBoostDetector
from minerlens_training.detectors.sequence import LSTMAutoencoderDetector, LSTMDetector, SequenceDetector

DETECTORS: dict[str, type[BaseDetector]] = {
    DecisionTreeDetector.name: DecisionTreeDetector,
    XGBoostDetector.name: XGBoostDetector,
    MLPDetector.name: MLPDetector,
    LSTMDetector.name: LSTMDetector,
    LSTMAutoencoderDetector.name: LSTMAutoencoderDetector,
}
FEATURE_DETECTORS = tuple(n for n, c in DETECTORS.items() if c.input_kind == "features")
SEQUENCE_DETECTORS = tuple(n for n, c in DETECTORS.items() if c.input_kind == "sequence")


def detector_class(name: str) -> type[BaseDetector]:
    try:
        return DETECTORS[name]
    except KeyError:
        msg = f"unknown detector {name!r}; known: {', '.join(DETECTORS)}"
        raise ValueError(msg) from None


def make_detector(name: str, seed: int = 0, **params: Any) -> BaseDetector:
    """A fresh detector by registry name; ``params`` are its constructor's keyword arguments."""
    return detector_class(name)(seed=seed, **params)


def input_kind(name: str) -> InputKind:
    """What the named detector reads: ``features`` or ``sequence`` (raises ``ValueError`` if unknown)."""
    return detector_class(name).input_kind


__all__ = [
    "DETECTORS",
    "FEATURE_DETECTORS",
    "SEQUENCE_DETECTORS",
    "BaseDetector",
    "DecisionTreeDetector",
    "Detector",
    "InputKind",
    "LSTMAutoencoderDetector",
    "LSTMDetector",
    "MLPDetector",
    "ScoreKind",
    "SequenceDetector",
    "XGBoostDetector",
    "detector_class",
    "input_kind",
    "make_detector",
    "threshold_for_fpr",
]
