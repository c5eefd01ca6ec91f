"""Artifacts: round trip, ONNX Runtime parity with the native model, tampering and spec mismatch refused,
``background.npz`` written from reference windows (and artifacts without one still load)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from minerlens_core.features import FeatureSpec, WindowPolicy
from minerlens_core.models import BACKGROUND_FILE, DIGEST_FILE, MANIFEST, NATIVE_FILE, ONNX_FILE, Background
from minerlens_core.models.seal import write_seal
from minerlens_training.artifacts import (
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

from tests.training.conftest import FPR, Held


@pytest.fixture(scope="module", params=["tree", "xgboost", "mlp"])
def model(request: pytest.FixtureRequest, dataset: Dataset, held: Held) -> Detector:
    """The feature detectors, fitted on the training runs (sequence models: ``sequence.artifacts``)."""
    det = make_detector(str(request.param), seed=0)
    assert isinstance(det, Detector)
    X, y = dataset.subset(held.train)
    det.fit(X, y)
    det.infer_threshold(X[y == 0], FPR)
    return det


def _save(
    det: Detector,
    dataset: Dataset,
    out: Path,
    spec: FeatureSpec | None = None,
    reference: tuple[np.ndarray, np.ndarray] | None = None,
) -> Path:
    info = TrainingData(manifest_sha256=dataset.manifest_sha256, windows=len(dataset), runs=len(dataset.runs))
    save_artifact(det, out, spec or FeatureSpec.default(), info, reference=reference)
    return out


def test_round_trip_and_onnx_parity(model: Detector, dataset: Dataset, held: Held, tmp_path: Path) -> None:
    out = _save(model, dataset, tmp_path / "model")
    assert {p.name for p in out.iterdir()} >= {MANIFEST, DIGEST_FILE, NATIVE_FILE, ONNX_FILE}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp dirs left behind"
    m = read_manifest(out)
    spec = FeatureSpec.default()
    assert m.feature_digest == spec.digest
    assert m.feature_names == list(spec.names)
    assert m.threshold == model.threshold
    assert m.threshold_fpr == model.threshold_fpr
    assert m.training_data.manifest_sha256 == dataset.manifest_sha256
    assert m.kind == model.kind
    assert m.created_at.tzinfo is not None
    assert {"scikit-learn", "onnxruntime", "numpy"} <= m.libraries.keys()
    X = dataset.X[held.test].copy()
    X[::3, -14:] = np.nan  # windows without timestamps: the imputer must behave the same in ONNX
    native = model.score(X)
    loaded = load_artifact(out)
    assert np.array_equal(loaded.detector.score(X), native)
    assert loaded.detector.threshold == model.threshold
    onnx = OnnxModel(out)
    np.testing.assert_allclose(onnx.score(X), native, atol=1e-5, rtol=0)
    assert onnx.score(X[:0]).shape == (0,)
    with pytest.raises(ValueError, match="features input"):
        onnx.score(X[:, :5])


def test_saving_twice_replaces_the_artifact(model: Detector, dataset: Dataset, tmp_path: Path) -> None:
    out = _save(model, dataset, tmp_path / "model")
    (out / "stale").write_text("x")
    _save(model, dataset, out)
    assert not (out / "stale").exists()
    read_manifest(out)


def test_tampered_model_is_refused(model: Detector, dataset: Dataset, tmp_path: Path) -> None:
    out = _save(model, dataset, tmp_path / "model")
    data = bytearray((out / ONNX_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / ONNX_FILE).write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="modified"):
        OnnxModel(out)
    with pytest.raises(ArtifactIntegrityError):
        load_artifact(out)


def test_tampered_native_model_and_extra_files_are_refused(model: Detector, dataset: Dataset, tmp_path: Path) -> None:
    out = _save(model, dataset, tmp_path / "model")
    with (out / NATIVE_FILE).open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtifactIntegrityError):
        load_artifact(out)
    out2 = _save(model, dataset, tmp_path / "model2")
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


def _edit_and_reseal(out: Path, raw: dict[str, object]) -> None:
    """An edit sealed again (as by someone who can write the directory): the later checks must still hold."""
    data = json.dumps(raw).encode()
    (out / MANIFEST).write_bytes(data)
    write_seal(out, data)


def test_edited_manifest_digest_is_refused(model: Detector, dataset: Dataset, tmp_path: Path) -> None:
    out = _save(model, dataset, tmp_path / "model")
    digest = hashlib.sha256((out / MANIFEST).read_bytes()).hexdigest()
    assert (out / DIGEST_FILE).read_text() == f"{digest}  {MANIFEST}\n", "the writer seals (sha256sum -c format)"
    raw = json.loads((out / MANIFEST).read_text())
    raw["feature_digest"] = "0" * 64
    (out / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(ArtifactIntegrityError, match="modified after it was sealed"):
        load_artifact(out)
    _edit_and_reseal(out, raw)
    with pytest.raises(FeatureSpecMismatchError):
        load_artifact(out)
    raw = json.loads((out / MANIFEST).read_text())
    raw["feature_digest"] = FeatureSpec.default().digest
    raw["feature_spec"]["params"]["buckets"] = 64
    _edit_and_reseal(out, raw)
    with pytest.raises(FeatureSpecMismatchError):
        load_artifact(out)


def test_save_needs_a_threshold_and_load_needs_a_manifest(dataset: Dataset, tmp_path: Path) -> None:
    det = make_detector("tree").fit(dataset.X, dataset.y)
    with pytest.raises(ThresholdNotInferredError):
        _save(det, dataset, tmp_path / "model")
    assert not (tmp_path / "model").exists()
    with pytest.raises(ArtifactError, match="not a model artifact"):
        load_artifact(tmp_path)


def test_background_from_reference_windows(model: Detector, dataset: Dataset, held: Held, tmp_path: Path) -> None:
    X, y = dataset.subset(held.train)
    out = _save(model, dataset, tmp_path / "model", reference=(X, y))
    m = read_manifest(out)
    assert BACKGROUND_FILE in m.files
    assert (out / BACKGROUND_FILE).is_file()
    loaded = load_artifact(out)
    bg = loaded.background
    assert isinstance(bg, Background)
    assert list(bg.feature_names) == m.feature_names
    assert loaded.ref is not None
    assert loaded.ref.name == m.model_name
    assert len(loaded.ref.manifest_sha256) == 64
    assert loaded.spec == FeatureSpec.default()
    benign = X[y == 0].astype(np.float64)
    col = m.feature_names.index("freq.read")
    assert bg.benign_median[col] == pytest.approx(np.median(benign[:, col]))
    assert bg.benign_p05[col] <= bg.benign_median[col] <= bg.benign_p95[col]
    assert (bg.importance >= 0).all()
    assert bg.importance.sum() == pytest.approx(1.0)
    native = getattr(model.pipeline.named_steps["model"], "feature_importances_", None)
    if native is not None:
        np.testing.assert_allclose(bg.importance, np.asarray(native) / np.sum(native), atol=1e-6)
    else:  # the MLP: permutation importance, only columns that vary can matter
        assert (bg.importance[np.ptp(np.nan_to_num(X), axis=0) == 0] == 0).all()
    assert set(bg.sample_labels.tolist()) == {0, 1}
    assert 0 < len(bg.sample) <= 200
    assert bg.sample.shape[1] == X.shape[1]


def test_artifact_without_background_loads(model: Detector, dataset: Dataset, tmp_path: Path) -> None:
    out = _save(model, dataset, tmp_path / "model")
    assert BACKGROUND_FILE not in read_manifest(out).files
    loaded = load_artifact(out)
    assert loaded.background is None
    assert loaded.ref is not None


def test_tampered_or_foreign_background_is_refused(dataset: Dataset, tmp_path: Path) -> None:
    import json

    from minerlens_core.digests import sha256_file

    det = make_detector("tree").fit(dataset.X, dataset.y)
    det.infer_threshold(dataset.X[dataset.y == 0], 0.05)
    out = _save(det, dataset, tmp_path / "model", reference=(dataset.X, dataset.y))
    with (out / BACKGROUND_FILE).open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtifactIntegrityError, match="modified"):
        load_artifact(out)
    # a background of other features, re-hashed into the manifest: the names check catches it
    Background.from_windows(tuple(f"x{i}" for i in range(3)), np.zeros((2, 3)), np.zeros(2)).save(out / BACKGROUND_FILE)
    raw = json.loads((out / MANIFEST).read_text())
    raw["files"][BACKGROUND_FILE] = sha256_file(out / BACKGROUND_FILE)
    (out / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(ArtifactIntegrityError, match="modified after it was sealed"):
        load_artifact(out)
    _edit_and_reseal(out, raw)
    with pytest.raises(ArtifactError, match="feature names differ"):
        load_artifact(out)
    with pytest.raises(ValueError, match="reference windows"):
        _save(det, dataset, tmp_path / "bad", reference=(dataset.X[:, :5], dataset.y))
    assert not (tmp_path / "bad").exists()
