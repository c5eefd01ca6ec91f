"""Sequence models: the inputs they read, ONNX parity with torch, verified artifacts, the training CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from minerlens_core.datasets.manifest import load_manifest
from minerlens_core.errors import ArtifactError, ArtifactIntegrityError
from minerlens_core.features import VOCAB_SIZE, FeatureSpec, window_sequence, windows_from_trace
from minerlens_core.models import (
    BACKGROUND_FILE,
    DIGEST_FILE,
    MANIFEST,
    ONNX_FILE,
    TORCH_FILE,
    TrainingData,
    read_manifest,
)
from minerlens_core.models.onnx_model import OnnxModel, pad_sequences
from minerlens_core.traces import read_trace
from minerlens_training.artifacts import load_artifact, save_artifact
from minerlens_training.calibration import calibrate
from minerlens_training.cli import app
from minerlens_training.datasets import Dataset
from minerlens_training.detectors import (
    Detector,
    LSTMAutoencoderDetector,
    LSTMDetector,
    SequenceDetector,
    make_detector,
)
from minerlens_training.sequence import PAD, as_sequences
from minerlens_training.sequence.artifacts import CONFIG_FILE, load_sequence_artifact, save_sequence_artifact
from typer.testing import CliRunner

from tests.training.conftest import FitModel, Held

PARITY = 1e-5


def _info(dataset: Dataset) -> TrainingData:
    return TrainingData(manifest_sha256=dataset.manifest_sha256, windows=len(dataset), runs=len(dataset.runs))


def _seq(fit_model: FitModel, name: str) -> SequenceDetector:
    det = fit_model(name)
    assert isinstance(det, SequenceDetector)
    return det


@pytest.fixture(scope="module", params=["lstm", "lstm-ae"])
def saved(
    request: pytest.FixtureRequest, fit_model: FitModel, dataset: Dataset, tmp_path_factory: pytest.TempPathFactory
) -> tuple[SequenceDetector, Path]:
    det = _seq(fit_model, str(request.param))
    out = tmp_path_factory.mktemp("seq") / "model"
    save_sequence_artifact(det, out, dataset.spec, _info(dataset), reference=(dataset.X, dataset.y))
    return det, out


def test_dataset_sequences_are_the_window_sequences(dataset_dir: Path, dataset: Dataset) -> None:
    """``Dataset.sequences`` holds ``pad_sequences(window_sequence(w))`` of every window, in row order."""
    assert dataset.sequences.shape == (len(dataset), 256)
    assert dataset.sequences.dtype == np.int16
    rec = next(r for r in load_manifest(dataset_dir).runs if r.status == "ok" and r.file)
    run = next(r for r in dataset.runs if r.workload == rec.workload and r.repeat == rec.repeat)
    windows = list(windows_from_trace(read_trace(dataset_dir / rec.file), dataset.spec.window))
    assert len(windows) == run.n_windows
    expected = pad_sequences([window_sequence(w, dataset.spec.params, 64) for w in windows], 64)
    got = as_sequences(dataset.sequences[run.start : run.start + run.n_windows], 64)
    assert np.array_equal(got, expected)
    assert dataset.inputs("sequence") is dataset.sequences
    assert dataset.inputs("features") is dataset.X


def test_as_sequences_takes_the_tail_and_left_pads() -> None:
    S = np.array([[PAD, PAD, 1, 2, 3], [5, 6, 7, 8, 9]], np.int16)
    assert as_sequences(S, 3).tolist() == [[1, 2, 3], [7, 8, 9]]
    assert as_sequences(S, 7).tolist() == [[PAD, PAD, PAD, PAD, 1, 2, 3], [PAD, PAD, 5, 6, 7, 8, 9]]
    assert as_sequences(S, 7).dtype == np.int64
    with pytest.raises(ValueError, match="features"):
        as_sequences(S.astype(np.float32), 3)
    with pytest.raises(ValueError, match="ids must be"):
        as_sequences(np.array([[VOCAB_SIZE + 1]]), 3)


def test_onnx_parity_and_artifact(saved: tuple[SequenceDetector, Path], dataset: Dataset, held: Held) -> None:
    det, out = saved
    names = {p.name for p in out.iterdir()}
    assert names == {MANIFEST, DIGEST_FILE, ONNX_FILE, TORCH_FILE, CONFIG_FILE, BACKGROUND_FILE}
    m = read_manifest(out)
    assert (m.input_kind, m.sequence_length, m.onnx_input) == ("sequence", det.length, "sequence")
    assert m.onnx_output == ("probabilities" if det.name == "lstm" else "score")
    assert m.kind_of_score == ("miner probability" if det.name == "lstm" else "anomaly score")
    assert m.detector == det.name
    assert m.threshold == det.threshold
    assert m.feature_digest == dataset.spec.digest
    assert "torch" in m.libraries
    S = as_sequences(dataset.sequences[held.test], det.length)
    native = det.score(S)
    onnx = OnnxModel(out)
    for batch in (S[:1], S[:7], S):  # the dynamic batch axis
        np.testing.assert_allclose(onnx.score(batch), det.score(batch), atol=PARITY, rtol=0)
    np.testing.assert_allclose(onnx.score(S), native, atol=PARITY, rtol=0)
    assert np.array_equal(onnx.predict(S), native > det.threshold) or np.abs(native - det.threshold).min() < PARITY
    loaded = load_sequence_artifact(out, dataset.spec)
    assert loaded.detector.threshold == det.threshold
    assert loaded.detector.hyperparameters() == det.hyperparameters()
    np.testing.assert_array_equal(loaded.detector.score(S), native)


def test_lstm_onnx_outputs_probabilities(saved: tuple[SequenceDetector, Path], dataset: Dataset) -> None:
    det, out = saved
    sess = ort.InferenceSession(str(out / ONNX_FILE), providers=["CPUExecutionProvider"])
    S = as_sequences(dataset.sequences[:50], det.length)
    outputs = sess.run(None, {"sequence": S})
    if det.name == "lstm":
        assert [o.name for o in sess.get_outputs()] == ["probabilities"]
        (proba,) = outputs
        assert proba.shape == (50, 2)
        assert proba.dtype == np.float32
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
        np.testing.assert_allclose(proba[:, 1], det.score(S), atol=PARITY, rtol=0)
    else:
        assert isinstance(det, LSTMAutoencoderDetector)
        assert [o.name for o in sess.get_outputs()] == ["score", "position_error"]
        score, pe = outputs
        assert score.shape == (50,)
        assert pe.shape == (50, det.length)
        assert score.dtype == pe.dtype == np.float32
        assert np.all(pe[S == PAD] == 0)
        assert np.all(pe[S != PAD] > 0)
        # -log p of an unlikely call is ~10-20: float32 agreement there is relative (measured 1.5e-4 absolute at
        # worst on the lab dataset, where the score itself agreed to 1.4e-6)
        np.testing.assert_allclose(pe, det.position_error(S), atol=PARITY, rtol=PARITY)
        np.testing.assert_allclose(score, det.score(S), atol=PARITY, rtol=0)


def test_autoencoder_score_is_monotone_in_the_mean_error(fit_model: FitModel, dataset: Dataset) -> None:
    det = _seq(fit_model, "lstm-ae")
    assert isinstance(det, LSTMAutoencoderDetector)
    S = as_sequences(dataset.sequences, det.length)
    pe = det.position_error(S).astype(np.float64)
    real = (S != PAD).sum(axis=1)
    e = pe.sum(axis=1) / np.maximum(real, 1)
    s = det.score(S)
    scale = float(det.net.scale)  # type: ignore[arg-type]
    np.testing.assert_allclose(s, e / (e + scale), atol=1e-5)
    order = np.argsort(e)
    assert np.all(np.diff(s[order]) >= -1e-6)
    assert np.all((s >= 0) & (s < 1))
    # the scale is the median error of the benign training windows: about half of them score above 0.5
    benign = dataset.y == 0
    assert 0.2 < (s[benign] > 0.5).mean() < 0.8


def test_autoencoder_learns_from_benign_windows_only(dataset: Dataset) -> None:
    S, y = dataset.sequences, dataset.y
    kw = {"epochs": 2, "length": 32}
    with_miners = make_detector("lstm-ae", seed=3, **kw).fit(S, y)
    benign_only = make_detector("lstm-ae", seed=3, **kw).fit(S[y == 0], y[y == 0])
    np.testing.assert_array_equal(with_miners.score(S[:40]), benign_only.score(S[:40]))
    again = make_detector("lstm-ae", seed=3, **kw).fit(S, y)
    np.testing.assert_array_equal(again.score(S[:40]), with_miners.score(S[:40]))


def test_out_of_fold_calibration_of_sequence_models(dataset: Dataset) -> None:
    for name in ("lstm", "lstm-ae"):
        det = make_detector(name, epochs=1, length=16).fit(dataset.sequences, dataset.y)
        t = calibrate(det, dataset.sequences, dataset.y, dataset.run, 0.05, "oof")
        assert det.threshold == t
        assert det.threshold_fpr == 0.05
        assert 0.0 <= t <= 1.0


def test_tampered_weights_and_wrong_kind_are_refused(
    saved: tuple[SequenceDetector, Path], fit_model: FitModel, dataset: Dataset, tmp_path: Path
) -> None:
    det, out = saved
    bad = tmp_path / "bad"
    save_sequence_artifact(det, bad, dataset.spec, _info(dataset))
    weights = bad / TORCH_FILE
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ArtifactIntegrityError):
        load_sequence_artifact(bad)
    with pytest.raises(ArtifactIntegrityError):
        OnnxModel(bad)
    tree = fit_model("tree")
    assert isinstance(tree, Detector)
    save_artifact(tree, tmp_path / "tree", dataset.spec, _info(dataset))
    with pytest.raises(ArtifactError, match="not a sequence model"):
        load_sequence_artifact(tmp_path / "tree")
    with pytest.raises(ArtifactError):
        load_artifact(out)  # a sequence artifact has no model.joblib


def test_saving_needs_a_threshold(dataset: Dataset, tmp_path: Path) -> None:
    det = LSTMDetector(epochs=1, length=8).fit(dataset.sequences, dataset.y)
    from minerlens_training.errors import ThresholdNotInferredError

    with pytest.raises(ThresholdNotInferredError):
        save_sequence_artifact(det, tmp_path / "m", dataset.spec, _info(dataset))
    assert not (tmp_path / "m").exists()
    assert not list(tmp_path.iterdir()), "temp dirs left behind"


def test_cli_train_sequence_model(dataset_dir: Path, dataset: Dataset, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            str(dataset_dir),
            "--out",
            str(tmp_path / "m"),
            "--model",
            "lstm-ae",
            "--fpr",
            "0.05",
            "--calibration",
            "train",
        ],
    )
    assert res.exit_code == 0, res.output
    m = read_manifest(tmp_path / "m", FeatureSpec.default())
    assert m.detector == "lstm-ae"
    assert m.threshold_fpr == 0.05
    assert m.training_data.windows == len(dataset)
    assert json.loads((tmp_path / "m" / CONFIG_FILE).read_text())["detector"] == "lstm-ae"
    S = as_sequences(dataset.sequences, 64)
    loaded = load_sequence_artifact(tmp_path / "m")
    np.testing.assert_allclose(OnnxModel(tmp_path / "m").score(S), loaded.detector.score(S), atol=PARITY, rtol=0)
