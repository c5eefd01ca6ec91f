"""Error hierarchy of minerlens. Each error says what is wrong in words an operator can act on."""

from __future__ import annotations


class MinerlensError(Exception):
    """Base of every error minerlens raises on purpose."""


class TraceFormatError(MinerlensError):
    """A trace file cannot be read at all (missing, wrong format, unreadable)."""


class CaptureError(MinerlensError):
    """Kernel capture cannot start or continue (no tracefs, no permission, no such cgroup)."""


class ConfigurationError(MinerlensError):
    """Settings are missing or contradictory."""


class ArtifactError(MinerlensError):
    """A model artifact directory that is missing, incomplete or unreadable."""


class ArtifactIntegrityError(ArtifactError):
    """A file of the artifact does not match the sha256 its manifest records (tampered or corrupted)."""


class FeatureSpecMismatchError(ArtifactError):
    """The artifact was trained on feature vectors laid out differently from this feature library's."""
