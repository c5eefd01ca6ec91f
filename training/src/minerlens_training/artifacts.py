"""Writing model artifact directories (atomically) and loading their native detectors.

The layout, the manifest and its verification live in ``minerlens_core.models`` (serving reads them
with onnxruntime only); this module adds what needs the training stack: ONNX export, pickling the
fitted ``Detector`` and unpickling it again, which happens only after every hash was checked
(``model.joblib`` is a pickle).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import joblib
from minerlens_core.digests import sha256_file
from minerlens_core.errors import ArtifactError, FeatureSpecMismatchError
from minerlens_core.features import FeatureSpec
from minerlens_core.models import (
    MANIFEST,
    NATIVE_FILE,
    ONNX_FILE,
    XGB_FILE,
    ArtifactManifest,
    TrainingData,
    read_manifest,
)
from minerlens_core.models.onnx_model import OnnxModel

from minerlens_training.detectors import Detector
from minerlens_training.errors import ThresholdNotInferredError
from minerlens_training.onnx_export import to_onnx

__all__ = ["LoadedArtifact", "OnnxModel", "TrainingData", "load_artifact", "read_manifest", "save_artifact"]

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
