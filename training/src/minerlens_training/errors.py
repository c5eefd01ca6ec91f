"""Typed errors of the training package (all are ``MinerlensError``s, so the CLI prints them cleanly)."""

from __future__ import annotations

from minerlens_core.errors import MinerlensError


class TrainingError(MinerlensError):
    """Base of every error raised by ``minerlens_training``."""


class NotFittedError(TrainingError):
    """``score``/``predict``/``infer_threshold``/export called before ``fit``."""


class ThresholdNotInferredError(TrainingError):
    """``predict`` (or saving an artifact) before ``infer_threshold``."""


class DatasetError(TrainingError):
    """A dataset directory that cannot be turned into a labelled window matrix."""


class ArtifactError(TrainingError):
    """A model artifact directory that is missing, incomplete or unreadable."""


class ArtifactIntegrityError(ArtifactError):
    """A file of the artifact does not match the sha256 its manifest records (tampered or corrupted)."""


class FeatureSpecMismatchError(ArtifactError):
    """The artifact was trained on feature vectors laid out differently from this feature library's."""
