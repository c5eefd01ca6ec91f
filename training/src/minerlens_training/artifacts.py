"""Model artifact directories: write atomically, load only after every hash and the feature spec check.

Layout of ``MODELDIR``::

    model.onnx        the whole pipeline (imputer, scaler, model) for ONNX Runtime
    model.joblib      the fitted ``Detector`` (sklearn pipeline inside) for explainers and re-export
    model.xgb.json    XGBoost only: the native booster (version-portable)
    manifest.json     ``ArtifactManifest``: what the model is, what it was trained on, sha256 of every file

The manifest's file hashes detect corruption and edits of the model files; they do not authenticate the
manifest itself (anyone who can rewrite the directory can rewrite both), so artifacts must come from a
trusted location. ``model.joblib`` is a pickle: it is unpickled only after its hash was checked.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from minerlens_core.features import FeatureSpec
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from minerlens_training.datasets import sha256_file
from minerlens_training.detectors import Detector
from minerlens_training.errors import (
    ArtifactError,
    ArtifactIntegrityError,
    FeatureSpecMismatchError,
    ThresholdNotInferredError,
)
from minerlens_training.onnx_export import INPUT_NAME, POSITIVE_COLUMN, PROBABILITIES, to_onnx

ARTIFACT_VERSION = 1
MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"
NATIVE_FILE = "model.joblib"
XGB_FILE = "model.xgb.json"
_LIBRARIES = (
    "minerlens-core",
    "minerlens-training",
    "numpy",
    "scikit-learn",
    "xgboost-cpu",
    "xgboost",
    "skl2onnx",
    "onnxmltools",
    "onnx",
    "onnxruntime",
    "joblib",
)

F64 = npt.NDArray[np.float64]


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
    """registry name in ``minerlens_training.detectors.DETECTORS``"""
    feature_version: str
    feature_digest: str
    feature_names: list[str]
    feature_spec: dict[str, Any]
    threshold: float
    threshold_fpr: float
    """the benign-window false-positive rate the threshold was tuned for"""
    threshold_source: str = "training benign windows"
    onnx_input: str = INPUT_NAME
    onnx_output: str = PROBABILITIES
    onnx_positive_column: int = POSITIVE_COLUMN
    training_data: TrainingData
    files: dict[str, str] = Field(description="file name -> sha256")
    libraries: dict[str, str]
    created_at: datetime
    kind_of_score: Literal["miner probability"] = "miner probability"


def _libraries() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in _LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def save_artifact(
    detector: Detector,
    out: Path,
    spec: FeatureSpec,
    training_data: TrainingData,
    *,
    model_name: str | None = None,
    model_version: str = "0.1.0",
    threshold_source: str = "training benign windows",
) -> ArtifactManifest:
    """Write the artifact directory ``out`` atomically (a temp dir next to it, then renames)."""
    if detector.threshold is None or detector.threshold_fpr is None:
        msg = f"{detector.name}: infer_threshold() before saving, the artifact records the threshold"
        raise ThresholdNotInferredError(msg)
    if detector.n_features != spec.dim:
        msg = f"{detector.name} was fitted on {detector.n_features} features, the spec has {spec.dim}"
        raise FeatureSpecMismatchError(msg)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it 0700; an artifact is read by other users (the serving process)
        (tmp / ONNX_FILE).write_bytes(to_onnx(detector).SerializeToString())
        joblib.dump(detector, tmp / NATIVE_FILE)
        model = detector.pipeline.named_steps["model"]
        if hasattr(model, "get_booster"):
            model.get_booster().save_model(str(tmp / XGB_FILE))
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
        manifest = ArtifactManifest(
            model_name=model_name or f"minerlens-{detector.name}",
            version=model_version,
            kind=detector.kind,
            detector=detector.name,
            feature_version=spec.version,
            feature_digest=spec.digest,
            feature_names=list(spec.names),
            feature_spec=spec.model_dump(mode="json"),
            threshold=detector.threshold,
            threshold_fpr=detector.threshold_fpr,
            threshold_source=threshold_source,
            training_data=training_data,
            files=files,
            libraries=_libraries(),
            created_at=datetime.now(UTC),
        )
        (tmp / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _swap_in(new: Path, out: Path) -> None:
    """Replace ``out`` by ``new``: an existing artifact is moved aside first, then removed."""
    old: Path | None = None
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
        os.replace(out, old / "artifact")
    try:
        os.replace(new, out)
    except BaseException:
        if old is not None:
            os.replace(old / "artifact", out)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def read_manifest(directory: Path, expected_spec: FeatureSpec | None = None) -> ArtifactManifest:
    """Parse ``manifest.json`` and verify every file hash and the feature spec; raise on any mismatch."""
    directory = Path(directory)
    path = directory / MANIFEST
    try:
        manifest = ArtifactManifest.model_validate_json(path.read_text())
    except FileNotFoundError:
        msg = f"{directory}: not a model artifact (no {MANIFEST})"
        raise ArtifactError(msg) from None
    except (OSError, ValidationError, ValueError) as exc:
        msg = f"{path}: unreadable artifact manifest: {exc}"
        raise ArtifactError(msg) from None
    required = {ONNX_FILE, NATIVE_FILE}
    if not required <= manifest.files.keys():
        msg = f"{path}: manifest lists {sorted(manifest.files)}, needs {sorted(required)}"
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
    spec = expected_spec or FeatureSpec.default()
    if manifest.feature_digest != spec.digest or manifest.feature_names != list(spec.names):
        msg = (
            f"{directory}: trained on feature spec v{manifest.feature_version} digest {manifest.feature_digest[:16]}, "
            f"this feature library produces digest {spec.digest[:16]}: retrain the model"
        )
        raise FeatureSpecMismatchError(msg)
    try:
        stored = FeatureSpec.model_validate(manifest.feature_spec)
    except ValidationError as exc:
        msg = f"{directory}: stored feature spec does not validate with this feature library: {exc}"
        raise FeatureSpecMismatchError(msg) from None
    if stored.digest != manifest.feature_digest:
        msg = f"{directory}: stored feature spec digest {stored.digest[:16]} != manifest {manifest.feature_digest[:16]}"
        raise FeatureSpecMismatchError(msg)
    return manifest


@dataclass(frozen=True)
class LoadedArtifact:
    manifest: ArtifactManifest
    detector: Detector


def load_artifact(directory: Path, expected_spec: FeatureSpec | None = None) -> LoadedArtifact:
    """The native detector of a verified artifact (threshold restored from the manifest)."""
    manifest = read_manifest(directory, expected_spec)
    detector = joblib.load(Path(directory) / NATIVE_FILE)
    if not isinstance(detector, Detector):
        msg = f"{directory}: {NATIVE_FILE} holds a {type(detector).__name__}, not a Detector"
        raise ArtifactError(msg)
    detector.threshold = manifest.threshold
    detector.threshold_fpr = manifest.threshold_fpr
    return LoadedArtifact(manifest, detector)


class OnnxModel:
    """Score feature vectors with an artifact's ``model.onnx`` on ONNX Runtime (verified on load)."""

    def __init__(self, directory: Path, expected_spec: FeatureSpec | None = None) -> None:
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory, expected_spec)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(self.directory / ONNX_FILE), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.threshold = self.manifest.threshold

    @property
    def n_features(self) -> int:
        return len(self.manifest.feature_names)

    def score(self, X: npt.ArrayLike) -> F64:
        X32 = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
        if X32.ndim != 2 or X32.shape[1] != self.n_features:
            msg = f"expected (n, {self.n_features}) feature vectors, got shape {X32.shape}"
            raise ValueError(msg)
        if X32.shape[0] == 0:
            return np.zeros(0, np.float64)
        m = self.manifest
        (proba,) = self._session.run([m.onnx_output], {m.onnx_input: X32})
        return np.clip(np.asarray(proba, dtype=np.float64)[:, m.onnx_positive_column], 0.0, 1.0)

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        return np.asarray(self.score(X) > self.threshold, dtype=np.bool_)
