"""Typed errors of the training package (all are ``MinerlensError``s, so the CLI prints them cleanly)."""

from __future__ import annotations

from minerlens_core.errors import (  # noqa: F401  (re-exported: artifact errors live in core)
    ArtifactError,
    ArtifactIntegrityError,
    FeatureSpecMismatchError,
    MinerlensError,
)


class TrainingError(MinerlensError):
    """Base of every error raised by ``minerlens_training``."""


class NotFittedError(TrainingError):
    """``score``/``predict``/``infer_threshold``/export called before ``fit``."""


class ThresholdNotInferredError(TrainingError):
    """``predict`` (or saving an artifact) before ``infer_threshold``."""


class DatasetError(TrainingError):
    """A dataset directory that cannot be turned into a labelled window matrix."""
