"""Detectors: one interface (``Detector``), three models, a registry by name."""

from __future__ import annotations

from minerlens_training.detectors.base import Detector, threshold_for_fpr
from minerlens_training.detectors.models import DecisionTreeDetector, MLPDetector, XGBoostDetector

DETECTORS: dict[str, type[Detector]] = {
    DecisionTreeDetector.name: DecisionTreeDetector,
    XGBoostDetector.name: XGBoostDetector,
    MLPDetector.name: MLPDetector,
}


def make_detector(name: str, seed: int = 0) -> Detector:
    try:
        return DETECTORS[name](seed=seed)
    except KeyError:
        msg = f"unknown detector {name!r}; known: {', '.join(DETECTORS)}"
        raise ValueError(msg) from None


__all__ = [
    "DETECTORS",
    "DecisionTreeDetector",
    "Detector",
    "MLPDetector",
    "XGBoostDetector",
    "make_detector",
    "threshold_for_fpr",
]
