"""Model artifact manifests: what a model is, what it was trained on, and the sha256 of every file.

Layout of an artifact directory (``MODELDIR``)::

    model.onnx        what ONNX Runtime serves (the whole pipeline: imputer, scaler, model)
    model.joblib      feature models: the fitted native detector (explainers, re-export)
    model.xgb.json    XGBoost only: the native booster (version-portable)
    model.pt          sequence models: the torch state dict
    background.npz    optional: benign reference windows explainers need (baselines, SHAP/LIME background)
    manifest.json     ``ArtifactManifest``: threshold, feature spec, versions, sha256 of every file above
    manifest.sha256   the sha256 of manifest.json (``sha256sum -c`` format): the seal
    manifest.sig      optional: Ed25519 signature of manifest.json (``minerlens model sign``)

``VerifiedManifest`` (what the scorer, the explainer, the featurizer and training load through) checks,
in this order, and refuses the artifact with ONE ``ArtifactError`` naming the reason:

1. ``manifest.json`` is there and small; its sha256 equals ``manifest.sha256`` (any edit of the
   threshold, the feature spec, the versions or a file hash since sealing is refused);
2. with a public key configured (``MINERLENS_MODEL_PUBKEY``, ``signing.Trust``) ``manifest.sig`` is
   there, made by that key and valid for these bytes;
3. the manifest parses; it lists plain file names only, ``model.onnx`` among them;
4. the directory holds exactly the listed files (plus the seal files), each with its recorded sha256;
5. this feature library reproduces the stored feature spec (names and digest).

The digest stops accidents and naive edits; whoever can write the directory can re-seal it, which
only a signature (with the key kept elsewhere) prevents. ``OnnxModel`` then re-checks ``model.onnx``'s
bytes as it loads them and refuses a model ONNX Runtime cannot load or run. This module needs only
pydantic (``cryptography`` when a key is used): the serving path and training share it.
"""

from __future__ import annotations

import stat
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from minerlens_core.digests import sha256_file
from minerlens_core.errors import ArtifactError, ArtifactIntegrityError, FeatureSpecMismatchError
from minerlens_core.features import FeatureSpec
from minerlens_core.models.layout import (
    BACKGROUND_FILE,
    DIGEST_FILE,
    MANIFEST,
    NATIVE_FILE,
    ONNX_FILE,
    SEAL_FILES,
    SIGNATURE_FILE,
    TORCH_FILE,
    XGB_FILE,
    is_plain_file_name,
)
from minerlens_core.models.seal import check_seal, read_manifest_bytes, write_manifest_bytes, write_seal
from minerlens_core.models.signing import Trust
from minerlens_core.schemas.windows import ModelRef

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
    "SEQUENCE_INPUT",
    "SIGNATURE_FILE",
    "TORCH_FILE",
    "XGB_FILE",
    "ArtifactManifest",
    "TrainingData",
    "VerifiedManifest",
    "read_manifest",
    "seal_artifact",
    "sign_artifact",
    "spec_fields",
    "write_manifest",
]

ARTIFACT_VERSION = 1
INPUT_NAME = "features"
SEQUENCE_INPUT = "sequence"
PROBABILITIES = "probabilities"
POSITIVE_COLUMN = 1


class TrainingData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manifest_sha256: str
    """sha256 of the dataset's manifest.json (which lists every trace's sha256)"""
    source: str = ""
    windows: int = 0
    miner_windows: int = 0
    runs: int = 0


class ArtifactManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    artifact_version: int = ARTIFACT_VERSION
    model_name: str
    version: str
    kind: str
    detector: str
    """registry name of the detector class in ``minerlens_training.detectors``"""
    feature_version: str
    feature_digest: str
    feature_names: list[str]
    feature_spec: dict[str, Any]
    threshold: float
    threshold_fpr: float
    """the benign-window false-positive rate the threshold was tuned for"""
    threshold_source: str = "training benign windows"
    input_kind: Literal["features", "sequence"] = "features"
    """``features``: float32 (n, dim) vectors; ``sequence``: int64 (n, sequence_length) syscall ids"""
    sequence_length: int | None = Field(default=None, ge=1)
    onnx_input: str = INPUT_NAME
    onnx_output: str = PROBABILITIES
    onnx_positive_column: int = POSITIVE_COLUMN
    training_data: TrainingData
    files: dict[str, str] = Field(description="file name -> sha256")
    libraries: dict[str, str]
    created_at: datetime
    kind_of_score: Literal["miner probability", "anomaly score"] = "miner probability"
    gate: Literal["none", "network"] = "none"
    """decision gate the threshold was calibrated with and the scorer applies (``features.gates``)"""


def spec_fields(spec: FeatureSpec) -> dict[str, Any]:
    """The manifest fields that record the feature spec a model was trained on (checked on every read)."""
    return {
        "feature_version": spec.version,
        "feature_digest": spec.digest,
        "feature_names": list(spec.names),
        "feature_spec": spec.model_dump(mode="json"),
    }


def _parse(directory: Path, raw: bytes) -> ArtifactManifest:
    try:
        return ArtifactManifest.model_validate_json(raw)
    except (ValidationError, ValueError) as exc:
        msg = f"{directory / MANIFEST}: unreadable artifact manifest: {str(exc)[:500]}"
        raise ArtifactError(msg) from None


def _verify_files(directory: Path, manifest: ArtifactManifest) -> None:
    odd = sorted(n for n in manifest.files if not is_plain_file_name(n))
    if odd:
        msg = f"{directory / MANIFEST}: lists file names that are not plain names: {[n[:64] for n in odd[:5]]}"
        raise ArtifactIntegrityError(msg)
    if ONNX_FILE not in manifest.files:
        msg = f"{directory / MANIFEST}: manifest lists {sorted(manifest.files)}, needs {ONNX_FILE}"
        raise ArtifactError(msg)
    try:
        present = {p.name for p in directory.iterdir() if p.name not in SEAL_FILES}
    except OSError as exc:
        msg = f"{directory}: cannot list the artifact: {exc.strerror or exc}"
        raise ArtifactError(msg) from None
    extra = present - manifest.files.keys()
    if extra:
        msg = f"{directory}: files not in the manifest: {sorted(extra)[:10]}: refusing the artifact"
        raise ArtifactIntegrityError(msg)
    for name, digest in manifest.files.items():
        f = directory / name
        try:
            regular = stat.S_ISREG(f.stat().st_mode)
        except OSError:
            regular = False
        if not regular:
            msg = f"{directory}: {name} is missing (or not a regular file): refusing the artifact"
            raise ArtifactIntegrityError(msg)
        try:
            actual = sha256_file(f)
        except OSError as exc:
            msg = f"{f}: unreadable: {exc.strerror or exc}"
            raise ArtifactIntegrityError(msg) from None
        if actual != digest:
            msg = f"{f}: sha256 {actual} != {digest} recorded in the manifest: the artifact was modified, refusing it"
            raise ArtifactIntegrityError(msg)


def _verify_spec(directory: Path, manifest: ArtifactManifest, expected: FeatureSpec | None) -> FeatureSpec:
    try:
        stored = FeatureSpec.model_validate(manifest.feature_spec)
    except ValidationError as exc:
        msg = f"{directory}: stored feature spec does not validate with this feature library: {exc}"
        raise FeatureSpecMismatchError(msg) from None
    if stored.digest != manifest.feature_digest or list(stored.names) != manifest.feature_names:
        msg = f"{directory}: stored feature spec digest {stored.digest[:16]} != manifest {manifest.feature_digest[:16]}"
        raise FeatureSpecMismatchError(msg)
    if expected is not None and expected.digest != stored.digest:
        msg = (
            f"{directory}: trained on feature spec v{manifest.feature_version} digest {manifest.feature_digest[:16]}, "
            f"expected digest {expected.digest[:16]} (window policy or feature parameters differ): retrain the model"
        )
        raise FeatureSpecMismatchError(msg)
    return stored


class VerifiedManifest:
    """A sealed (and, if required, signed) manifest whose files and feature spec were checked.

    ``sha256`` is the manifest's digest (the one ``ModelRef.manifest_sha256`` reports), ``spec`` the
    feature spec object, ``signed_by`` the key id that signed it when a key was required. ``trust``
    defaults to ``MINERLENS_MODEL_PUBKEY`` (``Trust.from_env``).
    """

    def __init__(self, directory: Path, expected_spec: FeatureSpec | None = None, trust: Trust | None = None) -> None:
        self.directory = Path(directory)
        trust = Trust.from_env() if trust is None else trust
        raw = read_manifest_bytes(self.directory)
        self.sha256 = check_seal(self.directory, raw, trust)
        self.raw = raw
        """the verified bytes of ``manifest.json``"""
        self.signed_by = trust.key_id
        self.manifest = _parse(self.directory, raw)
        _verify_files(self.directory, self.manifest)
        self.spec = _verify_spec(self.directory, self.manifest, expected_spec)

    @property
    def ref(self) -> ModelRef:
        return ModelRef(name=self.manifest.model_name, version=self.manifest.version, manifest_sha256=self.sha256)


def read_manifest(
    directory: Path, expected_spec: FeatureSpec | None = None, trust: Trust | None = None
) -> ArtifactManifest:
    """Verify the artifact (see module docstring) and return its manifest; raise on any mismatch.

    With ``expected_spec`` the stored spec must also equal it (same digest); without, the stored spec
    only has to be reproducible by this feature library.
    """
    return VerifiedManifest(directory, expected_spec, trust).manifest


def write_manifest(directory: Path, manifest: ArtifactManifest) -> str:
    """Write ``manifest.json`` into an artifact directory and seal it (``manifest.sha256``); return the digest.

    Every writer goes through here; a signature of an earlier manifest is removed (sign again).
    """
    return write_manifest_bytes(Path(directory), (manifest.model_dump_json(indent=2) + "\n").encode())


def seal_artifact(directory: Path) -> str:
    """Seal the manifest as it is now (after a deliberate edit, or an artifact from before seals).

    The model files must still match the hashes the manifest lists and the feature spec must be
    reproducible: sealing never blesses a modified model file. Returns the new digest.
    """
    directory = Path(directory)
    raw = read_manifest_bytes(directory)
    manifest = _parse(directory, raw)
    _verify_files(directory, manifest)
    _verify_spec(directory, manifest, None)
    return write_seal(directory, raw)


def sign_artifact(directory: Path, private_key: Path) -> tuple[str, str]:
    """Sign a verified artifact's manifest with an Ed25519 key file; return (manifest digest, key id).

    The artifact must verify first (sealed, files intact): signing vouches for what is there.
    """
    from minerlens_core.models.seal import write_signature

    verified = VerifiedManifest(Path(directory), trust=Trust.none())
    key = write_signature(verified.directory, verified.raw, private_key)
    return verified.sha256, key
