"""Artifacts: round trip, ONNX Runtime parity with the native model, tampering and spec mismatch refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from minerlens_core.features import FeatureSpec, WindowPolicy
from minerlens_training.artifacts import (
    MANIFEST,
    NATIVE_FILE,
    ONNX_FILE,
    OnnxModel,
    TrainingData,
    load_artifact,
    read_manifest,
    save_artifact,
)
from minerlens_training.datasets import Dataset
from minerlens_training.detectors import Detector, make_detector
from minerlens_training.errors import (
    ArtifactError,
    ArtifactIntegrityError,
    FeatureSpecMismatchError,
    ThresholdNotInferredError,
)

from tests.training.conftest import Held


def _save(det: Detector, dataset: Dataset, out: Path, spec: FeatureSpec | None = None) -> Path:
    info = TrainingData(manifest_sha256=dataset.manifest_sha256, windows=len(dataset), runs=len(dataset.runs))
    save_artifact(det, out, spec or FeatureSpec.default(), info)
    return out


def test_round_trip_and_onnx_parity(fitted: Detector, dataset: Dataset, held: Held, tmp_path: Path) -> None:
    out = _save(fitted, dataset, tmp_path / "model")
    assert sorted(p.name for p in out.iterdir()) >= [MANIFEST, NATIVE_FILE, ONNX_FILE]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp dirs left behind"
    m = read_manifest(out)
    spec = FeatureSpec.default()
    assert m.feature_digest == spec.digest
    assert m.feature_names == list(spec.names)
    assert m.threshold == fitted.threshold
    assert m.threshold_fpr == fitted.threshold_fpr
    assert m.training_data.manifest_sha256 == dataset.manifest_sha256
    assert m.kind == fitted.kind
    assert m.created_at.tzinfo is not None
    assert {"scikit-learn", "onnxruntime", "numpy"} <= m.libraries.keys()
    X = dataset.X[held.test].copy()
    X[::3, -14:] = np.nan  # windows without timestamps: the imputer must behave the same in ONNX
    native = fitted.score(X)
    loaded = load_artifact(out)
    assert np.array_equal(loaded.detector.score(X), native)
    assert loaded.detector.threshold == fitted.threshold
    onnx = OnnxModel(out)
    np.testing.assert_allclose(onnx.score(X), native, atol=1e-5, rtol=0)
    assert onnx.score(X[:0]).shape == (0,)
    with pytest.raises(ValueError, match="features input"):
        onnx.score(X[:, :5])


def test_saving_twice_replaces_the_artifact(fitted: Detector, dataset: Dataset, tmp_path: Path) -> None:
    out = _save(fitted, dataset, tmp_path / "model")
    (out / "stale").write_text("x")
    _save(fitted, dataset, out)
    assert not (out / "stale").exists()
    read_manifest(out)


def test_tampered_model_is_refused(fitted: Detector, dataset: Dataset, tmp_path: Path) -> None:
    out = _save(fitted, dataset, tmp_path / "model")
    data = bytearray((out / ONNX_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / ONNX_FILE).write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="modified"):
        OnnxModel(out)
    with pytest.raises(ArtifactIntegrityError):
        load_artifact(out)


def test_tampered_native_model_and_extra_files_are_refused(fitted: Detector, dataset: Dataset, tmp_path: Path) -> None:
    out = _save(fitted, dataset, tmp_path / "model")
    with (out / NATIVE_FILE).open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtifactIntegrityError):
        load_artifact(out)
    out2 = _save(fitted, dataset, tmp_path / "model2")
    (out2 / "extra.bin").write_bytes(b"x")
    with pytest.raises(ArtifactIntegrityError, match="not in the manifest"):
        load_artifact(out2)
    (out2 / "extra.bin").unlink()
    (out2 / ONNX_FILE).unlink()
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        OnnxModel(out2)


def test_feature_spec_mismatch_is_refused(dataset: Dataset, tmp_path: Path) -> None:
    other = FeatureSpec.build(window=WindowPolicy.count(500))  # same names, different digest
    assert other.dim == FeatureSpec.default().dim
    assert other.digest != FeatureSpec.default().digest
    det = make_detector("tree").fit(dataset.X, dataset.y)
    det.infer_threshold(dataset.X[dataset.y == 0], 0.05)
    out = _save(det, dataset, tmp_path / "model", spec=other)
    default = FeatureSpec.default()
    with pytest.raises(FeatureSpecMismatchError, match="retrain"):
        OnnxModel(out, expected_spec=default)
    with pytest.raises(FeatureSpecMismatchError):
        load_artifact(out, expected_spec=default)
    assert load_artifact(out, expected_spec=other).manifest.feature_digest == other.digest
    # without an expectation the model brings its own spec (serving windows the stream the way it was trained)
    assert OnnxModel(out).spec == other


def test_edited_manifest_digest_is_refused(fitted: Detector, dataset: Dataset, tmp_path: Path) -> None:
    out = _save(fitted, dataset, tmp_path / "model")
    raw = json.loads((out / MANIFEST).read_text())
    raw["feature_digest"] = "0" * 64
    (out / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(FeatureSpecMismatchError):
        load_artifact(out)
    raw = json.loads((out / MANIFEST).read_text())
    raw["feature_digest"] = FeatureSpec.default().digest
    raw["feature_spec"]["params"]["buckets"] = 64
    (out / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(FeatureSpecMismatchError):
        load_artifact(out)


def test_save_needs_a_threshold_and_load_needs_a_manifest(dataset: Dataset, tmp_path: Path) -> None:
    det = make_detector("tree").fit(dataset.X, dataset.y)
    with pytest.raises(ThresholdNotInferredError):
        _save(det, dataset, tmp_path / "model")
    assert not (tmp_path / "model").exists()
    with pytest.raises(ArtifactError, match="not a model artifact"):
        load_artifact(tmp_path)
