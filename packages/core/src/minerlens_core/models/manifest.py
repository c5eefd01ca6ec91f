"""Model artifact manifests: what a model is, what it was trained on, and the sha256 of every file.

Layout of an artifact directory (``MODELDIR``)::

    model.onnx        what ONNX Runtime serves (the whole pipeline: imputer, scaler, model)
    model.joblib      feature models: the fitted native detector (explainers, re-export)
    model.xgb.json    XGBoost only: the native booster (version-portable)
    model.pt          sequence models: the torch state dict
    background.npz    optional: benign reference windows explainers need (baselines, SHAP/LIME background)
    manifest.json     ``ArtifactManifest``

Reading a manifest verifies every file hash and that this feature library reproduces the stored
feature spec (names and digest). The hashes detect corruption and edits of model files; they do
not authenticate the manifest itself, so artifacts must come from a trusted location.
This module needs only pydantic: the collector-free serving path (scorer, explainer) and training
share it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from minerlens_core.digests import sha256_file
from minerlens_core.errors import ArtifactError, ArtifactIntegrityError, FeatureSpecMismatchError
from minerlens_core.features import FeatureSpec
from minerlens_core.schemas.windows import ModelRef

ARTIFACT_VERSION = 1
MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"
NATIVE_FILE = "model.joblib"
XGB_FILE = "model.xgb.json"
TORCH_FILE = "model.pt"
BACKGROUND_FILE = "background.npz"
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


def spec_fields(spec: FeatureSpec) -> dict[str, Any]:
    """The manifest fields that record the feature spec a model was trained on (checked on every read)."""
    return {
        "feature_version": spec.version,
        "feature_digest": spec.digest,
        "feature_names": list(spec.names),
        "feature_spec": spec.model_dump(mode="json"),
    }


def _load(directory: Path) -> tuple[ArtifactManifest, str]:
    path = directory / MANIFEST
    try:
        raw = path.read_bytes()
        return ArtifactManifest.model_validate_json(raw), hashlib.sha256(raw).hexdigest()
    except FileNotFoundError:
        msg = f"{directory}: not a model artifact (no {MANIFEST})"
        raise ArtifactError(msg) from None
    except (OSError, ValidationError, ValueError) as exc:
        msg = f"{path}: unreadable artifact manifest: {exc}"
        raise ArtifactError(msg) from None


def _verify_files(directory: Path, manifest: ArtifactManifest) -> None:
    if ONNX_FILE not in manifest.files:
        msg = f"{directory / MANIFEST}: manifest lists {sorted(manifest.files)}, needs {ONNX_FILE}"
        raise ArtifactError(msg)
    present = {p.name for p in directory.iterdir() if p.name != MANIFEST}
    extra = present - manifest.files.keys()
    if extra:
        msg = f"{directory}: files not in the manifest: {sorted(extra)}"
        raise ArtifactIntegrityError(msg)
    for name, digest in manifest.files.items():
        f = directory / name
        if not f.is_file():
            msg = f"{directory}: {name} is missing"
            raise ArtifactIntegrityError(msg)
        actual = sha256_file(f)
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
    """A manifest whose files and feature spec were checked, with its own sha256 and the spec object."""

    def __init__(self, directory: Path, expected_spec: FeatureSpec | None = None) -> None:
        self.directory = Path(directory)
        self.manifest, self.sha256 = _load(self.directory)
        _verify_files(self.directory, self.manifest)
        self.spec = _verify_spec(self.directory, self.manifest, expected_spec)

    @property
    def ref(self) -> ModelRef:
        return ModelRef(name=self.manifest.model_name, version=self.manifest.version, manifest_sha256=self.sha256)


def read_manifest(directory: Path, expected_spec: FeatureSpec | None = None) -> ArtifactManifest:
    """Parse ``manifest.json``, verify every file hash and the feature spec; raise on any mismatch.

    With ``expected_spec`` the stored spec must also equal it (same digest); without, the stored spec
    only has to be reproducible by this feature library.
    """
    return VerifiedManifest(directory, expected_spec).manifest
