"""Writing model artifact directories (atomically) and loading their native detectors.

The layout, the manifest and its verification live in ``minerlens_core.models`` (serving reads them
with onnxruntime only); this module adds what needs the training stack: ONNX export, pickling the
fitted ``Detector`` and unpickling it again, which happens only after every hash was checked
(``model.joblib`` is a pickle), and the optional ``background.npz`` (``reference=(X, y)``): benign
percentiles, the model's global feature importance and a small stratified sample, which the scorer's
inline reasons and the explainers (``minerlens_training.explain``) compare a window with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import numpy.typing as npt
from minerlens_core.errors import ArtifactError, FeatureSpecMismatchError
from minerlens_core.features import FeatureSpec
from minerlens_core.models import (
    BACKGROUND_FILE,
    MANIFEST,
    NATIVE_FILE,
    ONNX_FILE,
    XGB_FILE,
    ArtifactManifest,
    Background,
    TrainingData,
    VerifiedManifest,
    read_manifest,
)
from minerlens_core.models.onnx_model import OnnxModel
from minerlens_core.schemas.windows import ModelRef

from minerlens_training.artifact_writer import manifest_for, require_threshold, staged_directory, write_manifest
from minerlens_training.detectors import Detector
from minerlens_training.onnx_export import to_onnx

__all__ = [
    "BACKGROUND_FILE",
    "MANIFEST",
    "NATIVE_FILE",
    "ONNX_FILE",
    "XGB_FILE",
    "Background",
    "LoadedArtifact",
    "OnnxModel",
    "TrainingData",
    "load_artifact",
    "load_background",
    "read_manifest",
    "save_artifact",
]

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


def save_artifact(
    detector: Detector,
    out: Path,
    spec: FeatureSpec,
    training_data: TrainingData,
    *,
    model_name: str | None = None,
    model_version: str = "0.1.0",
    threshold_source: str = "training benign windows",
    reference: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
    background_size: int = 200,
    seed: int = 0,
    gate: str = "none",
) -> ArtifactManifest:
    """Write the artifact directory ``out`` atomically (a temp dir next to it, then renames).

    ``reference=(X, y)`` (normally the training windows and labels, rows laid out as ``spec.names``)
    adds ``background.npz``: percentiles of the benign rows, the model's global importance
    (``minerlens_training.explain.importance``) and a class-stratified sample of ``background_size`` rows.
    """
    require_threshold(detector)
    if detector.n_features != spec.dim:
        msg = f"{detector.name} was fitted on {detector.n_features} features, the spec has {spec.dim}"
        raise FeatureSpecMismatchError(msg)
    with staged_directory(Path(out)) as tmp:
        (tmp / ONNX_FILE).write_bytes(to_onnx(detector).SerializeToString())
        joblib.dump(detector, tmp / NATIVE_FILE)
        model = detector.pipeline.named_steps["model"]
        if hasattr(model, "get_booster"):
            model.get_booster().save_model(str(tmp / XGB_FILE))
        if reference is not None:
            _background(detector, spec, reference, background_size, seed).save(tmp / BACKGROUND_FILE)
        manifest = manifest_for(
            detector, tmp, spec, training_data, _LIBRARIES,
            model_name=model_name, model_version=model_version, threshold_source=threshold_source, gate=gate,
        )  # fmt: skip
        write_manifest(tmp, manifest)
    return manifest


def _background(
    detector: Detector, spec: FeatureSpec, reference: tuple[npt.ArrayLike, npt.ArrayLike], size: int, seed: int
) -> Background:
    from minerlens_training.explain.importance import global_importance  # the explain package imports this module

    X = np.asarray(reference[0], dtype=np.float32)
    y = np.asarray(reference[1], dtype=np.int64).ravel()
    if X.ndim != 2 or X.shape[1] != spec.dim or X.shape[0] != y.shape[0]:
        msg = f"reference windows must be (n, {spec.dim}) with n labels, got X {X.shape} and y {y.shape}"
        raise ValueError(msg)
    importance = global_importance(detector, X, y, seed=seed)
    return Background.from_windows(spec.names, X, y, importance, sample_size=size, seed=seed)


@dataclass(frozen=True)
class LoadedArtifact:
    manifest: ArtifactManifest
    detector: Detector
    background: Background | None = None
    """``background.npz`` when the artifact has one (artifacts saved without ``reference`` have none)"""
    ref: ModelRef | None = None
    spec: FeatureSpec | None = None


def load_background(verified: VerifiedManifest) -> Background | None:
    """The verified artifact's ``background.npz`` (None when it has none), checked against its feature names."""
    if BACKGROUND_FILE not in verified.manifest.files:
        return None
    bg = Background.load(verified.directory / BACKGROUND_FILE)
    if list(bg.feature_names) != verified.manifest.feature_names:
        msg = f"{verified.directory / BACKGROUND_FILE}: feature names differ from the manifest's"
        raise ArtifactError(msg)
    return bg


def load_artifact(directory: Path, expected_spec: FeatureSpec | None = None) -> LoadedArtifact:
    """The native detector of a verified artifact (threshold restored from the manifest) and its background."""
    verified = VerifiedManifest(Path(directory), expected_spec)
    manifest = verified.manifest
    if NATIVE_FILE not in manifest.files:
        msg = f"{directory}: a {manifest.input_kind} model without {NATIVE_FILE} (no native feature detector)"
        raise ArtifactError(msg)
    detector = joblib.load(Path(directory) / NATIVE_FILE)
    if not isinstance(detector, Detector):
        msg = f"{directory}: {NATIVE_FILE} holds a {type(detector).__name__}, not a Detector"
        raise ArtifactError(msg)
    detector.threshold = manifest.threshold
    detector.threshold_fpr = manifest.threshold_fpr
    return LoadedArtifact(manifest, detector, load_background(verified), verified.ref, verified.spec)
