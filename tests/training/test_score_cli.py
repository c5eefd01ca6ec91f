"""``minerlens score`` / ``minerlens explain``: JSON lines on real traces (the committed sample, a ``names``
file), parity with the feature library + ONNX Runtime, the default-model lookup, and clean errors (exit 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from minerlens_core.datasets.manifest import load_manifest
from minerlens_core.features import FeatureSpec, WindowPolicy, vectorize_many, windows_from_trace
from minerlens_core.models import ONNX_FILE
from minerlens_core.models.onnx_model import OnnxModel
from minerlens_core.schemas.explanations import Explanation
from minerlens_core.traces import read_trace
from minerlens_training.artifacts import TrainingData, save_artifact
from minerlens_training.cli_score import MODEL_ENV, register
from minerlens_training.datasets import Dataset
from minerlens_training.detectors import make_detector
from typer.testing import CliRunner

from tests.training.test_explain_sequence import build_toy_autoencoder


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    root = typer.Typer()
    register(root)
    return root


@pytest.fixture(scope="module")
def model_dir(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    det = make_detector("tree", seed=0).fit(dataset.X, dataset.y)
    det.infer_threshold(dataset.X[dataset.y == 0], 0.05)
    out = tmp_path_factory.mktemp("score-model") / "tree"
    save_artifact(
        det, out, FeatureSpec.default(), TrainingData(manifest_sha256="0" * 64), reference=(dataset.X, dataset.y)
    )
    return out


@pytest.fixture(scope="module")
def traces(dataset_dir: Path) -> dict[str, Path]:
    """One miner and one benign trace of the test dataset that have at least one window."""
    out: dict[str, Path] = {}
    spec = FeatureSpec.default()
    for run in load_manifest(dataset_dir).runs:
        if run.status == "ok" and run.file and run.label not in out:
            path = dataset_dir / run.file
            if any(True for _ in windows_from_trace(read_trace(path), spec.window)):
                out[run.label] = path
    assert set(out) == {"miner", "benign"}
    return out


def _run(app: typer.Typer, args: list[str], env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, args, env=env or {MODEL_ENV: ""}, catch_exceptions=False)


def _lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_score_parquet_traces(app: typer.Typer, model_dir: Path, traces: dict[str, Path]) -> None:
    files = [traces["miner"], traces["benign"]]
    result = _run(app, ["score", "--model", str(model_dir), "--format", "parquet", *map(str, files)])
    assert result.exit_code == 0, result.output
    records = _lines(result.stdout)
    onnx = OnnxModel(model_dir)
    spec = onnx.spec
    for f in files:
        mine = [r for r in records if r["file"] == str(f)]
        windows, summary = mine[:-1], mine[-1]
        assert summary["summary"] is True
        assert all("summary" not in r for r in windows)
        expected = list(windows_from_trace(read_trace(f), spec.window))
        assert [r["window"] for r in windows] == list(range(len(expected)))
        scores = onnx.score(vectorize_many(expected, spec))
        np.testing.assert_allclose([r["score"] for r in windows], scores, atol=1e-5)
        for r, w in zip(windows, expected, strict=True):
            assert 0.0 <= r["score"] <= 1.0
            assert r["miner"] == (r["score"] > onnx.threshold)
            assert r["model"] == {"name": onnx.ref.name, "version": onnx.ref.version}
            assert r["pod"] == w.pod_uid
            assert r["count"] == w.count
            assert r["window_id"].endswith(f"/count:1000/1000/{w.index}")
            assert r["start"] is None or r["start"].endswith("Z")
        assert summary["windows"] == len(windows)
        assert summary["miner_windows"] == sum(r["miner"] for r in windows)
        assert summary["alert"] == bool(summary["alert_pods"])
        assert summary["alert_policy"] == {"k": 3, "n": 5}
        if summary["alert"]:
            assert summary["miner_windows"] >= 3
            assert windows[summary["first_alert_window"]]["miner"]
    assert records[-1]["file"] == str(files[-1])


def test_score_names_file_and_alert_policy(app: typer.Typer, model_dir: Path, tmp_path: Path) -> None:
    f = tmp_path / "calls.txt"
    f.write_text("# a spinning worker\n" + "\n".join(["futex sched_yield futex"] * 800 + ["read write"] * 50) + "\n")
    result = _run(app, ["score", "--model", str(model_dir), "-f", "names", "--alert-k", "1", "--alert-n", "1", str(f)])
    assert result.exit_code == 0, result.output
    records = _lines(result.stdout)
    windows, summary = records[:-1], records[-1]
    assert [r["count"] for r in windows] == [1000, 1000, 500]  # 2500 calls: two full windows and the trailing half
    assert [r["complete"] for r in windows] == [True, True, False]
    assert all(r["start"] is None and r["end"] is None for r in windows)
    assert summary["windows"] == 3
    assert summary["alert_policy"] == {"k": 1, "n": 1}
    assert summary["alert"] == (summary["miner_windows"] >= 1)
    short = tmp_path / "short.txt"
    short.write_text("read write\n")
    result = _run(app, ["score", "--model", str(model_dir), "-f", "names", str(short)])
    assert result.exit_code == 0
    (only,) = _lines(result.stdout)
    assert only["windows"] == 0
    assert only["alert"] is False
    assert "no window" in only["note"]


def test_score_sequence_model(app: typer.Typer, tmp_path: Path) -> None:
    toy = build_toy_autoencoder(tmp_path / "ae")
    f = tmp_path / "calls.txt"
    f.write_text(" ".join(["futex"] * 1000 + ["read", "write"] * 500))
    result = _run(app, ["score", "--model", str(toy), "-f", "names", str(f)])
    assert result.exit_code == 0, result.output
    records = _lines(result.stdout)
    assert records[0]["miner"] is True
    assert records[1]["miner"] is False
    result = _run(app, ["explain", "--model", str(toy), "--method", "lstm-ae", "-f", "names", "--json", str(f)])
    assert result.exit_code == 0, result.output
    e = Explanation.model_validate_json(result.stdout)
    assert e.contributions[0].feature == "freq_nocheap.futex"


def test_default_model_from_the_environment(app: typer.Typer, model_dir: Path, traces: dict[str, Path]) -> None:
    result = _run(app, ["score", "-f", "parquet", str(traces["miner"])], env={MODEL_ENV: str(model_dir)})
    assert result.exit_code == 0, result.output
    assert _lines(result.stdout)[-1]["summary"] is True


def test_explain_text_json_and_plot(app: typer.Typer, model_dir: Path, traces: dict[str, Path], tmp_path: Path) -> None:
    f = str(traces["miner"])
    plot = tmp_path / "why.png"
    result = _run(app, ["explain", "--model", str(model_dir), "-f", "parquet", "--plot", str(plot), f])
    assert result.exit_code == 0, result.output
    assert "score " in result.stdout
    assert "threshold" in result.stdout
    assert "Toward" in result.stdout
    assert plot.read_bytes().startswith(b"\x89PNG")
    scored = _lines(_run(app, ["score", "--model", str(model_dir), "-f", "parquet", f]).stdout)[:-1]
    best = max(range(len(scored)), key=lambda i: scored[i]["score"])
    result = _run(app, ["explain", "--model", str(model_dir), "-f", "parquet", "--json", "--top", "4", f])
    e = Explanation.model_validate_json(result.stdout)
    assert e.window_id == scored[best]["window_id"]
    assert e.score == pytest.approx(scored[best]["score"], abs=1e-5)
    assert 1 <= len(e.contributions) <= 4
    result = _run(
        app, ["explain", "--model", str(model_dir), "-f", "parquet", "--json", "--window", "0", "--method", "lime", f]
    )
    assert result.exit_code == 0, result.output
    e0 = Explanation.model_validate_json(result.stdout)
    assert e0.method == "lime"
    assert e0.window_id == scored[0]["window_id"]


def _error(result: Any, text: str) -> None:
    assert result.exit_code == 2, result.output
    assert text in result.output, result.output
    assert "Traceback" not in result.output


def test_errors_are_clean(
    app: typer.Typer, model_dir: Path, traces: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m, f = str(model_dir), str(traces["miner"])
    _error(_run(app, ["score", "--model", m, "-f", "pcap", f]), "unknown trace format")
    _error(_run(app, ["score", "--model", m, "-f", "strace", str(tmp_path / "missing.txt")]), "no such file")
    _error(_run(app, ["score", "--model", m, "-f", "names", f]), "binary file")
    _error(_run(app, ["score", "--model", str(tmp_path), "-f", "parquet", f]), "not a model artifact")
    _error(_run(app, ["score", "--model", m, "-f", "parquet", "--alert-k", "6", f]), "--alert-k")
    _error(_run(app, ["explain", "--model", m, "-f", "parquet", "--window", "99999", f]), "--window 99999")
    _error(_run(app, ["explain", "--model", m, "-f", "parquet", "--method", "anchors", f]), "shap, lime, lstm-ae")
    _error(_run(app, ["explain", "--model", m, "-f", "parquet", "--method", "lstm-ae", f]), "sequence models")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("minerlens_training.cli_score.__file__", str(tmp_path / "a" / "b" / "c" / "cli_score.py"))
    _error(_run(app, ["score", "-f", "parquet", f]), "no model")
    tampered = tmp_path / "tampered"
    shutil.copytree(model_dir, tampered)
    (tampered / ONNX_FILE).write_bytes((tampered / ONNX_FILE).read_bytes()[:-1])
    _error(_run(app, ["score", "--model", str(tampered), "-f", "parquet", f]), "modified")
    names = tmp_path / "n.txt"
    names.write_text("read write\n" * 10)
    timed = tmp_path / "timed"
    det = make_detector("tree").fit(np.zeros((4, FeatureSpec.default().dim), np.float32), np.array([0, 1, 0, 1]))
    det.infer_threshold(np.zeros((2, FeatureSpec.default().dim), np.float32), 0.1)
    save_artifact(det, timed, FeatureSpec.build(window=WindowPolicy.time(1.0)), TrainingData(manifest_sha256="0" * 64))
    _error(_run(app, ["score", "--model", str(timed), "-f", "names", str(names)]), "no timestamps")
