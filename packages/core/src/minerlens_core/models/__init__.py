"""Model artifacts on the serving side: verified manifests and ONNX Runtime scoring.

``manifest`` needs only pydantic; ``onnx_model`` needs ``onnxruntime`` (extra ``minerlens-core[onnx]``)
and is imported explicitly by the services that score (``from minerlens_core.models.onnx_model import OnnxModel``).
"""

from minerlens_core.models.background import Background
from minerlens_core.models.manifest import (
    ARTIFACT_VERSION,
    BACKGROUND_FILE,
    INPUT_NAME,
    MANIFEST,
    NATIVE_FILE,
    ONNX_FILE,
    POSITIVE_COLUMN,
    PROBABILITIES,
    SEQUENCE_INPUT,
    TORCH_FILE,
    XGB_FILE,
    ArtifactManifest,
    TrainingData,
    VerifiedManifest,
    read_manifest,
    spec_fields,
)

__all__ = [
    "ARTIFACT_VERSION",
    "BACKGROUND_FILE",
    "INPUT_NAME",
    "MANIFEST",
    "NATIVE_FILE",
    "ONNX_FILE",
    "POSITIVE_COLUMN",
    "PROBABILITIES",
    "SEQUENCE_INPUT",
    "TORCH_FILE",
    "XGB_FILE",
    "ArtifactManifest",
    "Background",
    "TrainingData",
    "VerifiedManifest",
    "read_manifest",
    "spec_fields",
]
