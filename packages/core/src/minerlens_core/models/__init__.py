"""Model artifacts on the serving side: verified (sealed, optionally signed) manifests and ONNX Runtime scoring.

``manifest`` needs only pydantic (``cryptography`` when a signing key is used); ``onnx_model`` needs
``onnxruntime`` (extra ``minerlens-core[onnx]``) and is imported explicitly by the services that score
(``from minerlens_core.models.onnx_model import OnnxModel``). ``minerlens model keygen|seal|sign|verify``
(``models.cli``) manage seals and signatures.
"""

from minerlens_core.models.background import Background
from minerlens_core.models.layout import DIGEST_FILE, SEAL_FILES, SIGNATURE_FILE
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
    seal_artifact,
    sign_artifact,
    spec_fields,
    write_manifest,
)
from minerlens_core.models.signing import PUBKEY_ENV, ArtifactSignatureError, ArtifactTrustError, Trust

__all__ = [
    "ARTIFACT_VERSION",
    "BACKGROUND_FILE",
    "DIGEST_FILE",
    "INPUT_NAME",
    "MANIFEST",
    "NATIVE_FILE",
    "ONNX_FILE",
    "POSITIVE_COLUMN",
    "PROBABILITIES",
    "PUBKEY_ENV",
    "SEAL_FILES",
    "SEQUENCE_INPUT",
    "SIGNATURE_FILE",
    "TORCH_FILE",
    "XGB_FILE",
    "ArtifactManifest",
    "ArtifactSignatureError",
    "ArtifactTrustError",
    "Background",
    "TrainingData",
    "Trust",
    "VerifiedManifest",
    "read_manifest",
    "seal_artifact",
    "sign_artifact",
    "spec_fields",
    "write_manifest",
]
