"""End to end: evaluation report on the small dataset, and the train/evaluate commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from minerlens_training.alert_replay import ScorerAlertPolicy
from minerlens_training.artifacts import OnnxModel, load_artifact
from minerlens_training.cli import app
from minerlens_training.datasets import Dataset
from minerlens_training.evaluate import EvalConfig, evaluate
from minerlens_training.report import render_markdown, write_report
from typer.testing import CliRunner


def test_evaluate_report(dataset: Dataset, tmp_path: Path) -> None:
    report = evaluate(dataset, EvalConfig(models=("tree",), fpr=0.1, policy=ScorerAlertPolicy(2, 3), k_folds=2))
    pooled = report["pooled"]["tree"]
    assert set(pooled) == {"lofo", "impl-out", "run-kfold", "leaky-random"}
    assert pooled["impl-out"] == {}  # the sample has one miner implementation
    assert "impl-out" in report["config"]["unavailable_schemes"]
    # every window is scored exactly once in the pooled LOFO and run-k-fold results
    for scheme in ("lofo", "run-kfold"):
        assert pooled[scheme]["window"]["n"] == len(dataset)
        assert sorted(r["run"] for r in pooled[scheme]["runs"]) == list(range(len(dataset.runs)))
    lofo = [s for s in report["splits"] if s["scheme"] == "lofo"]
    assert len(lofo) == len(dataset.families("benign")) + len(dataset.families("miner"))
    noise = {g["group"] for g in pooled["run-kfold"]["noise"]}
    assert "0%" in noise
    assert pooled["lofo"]["roc"]["fpr"][0] == 0.0
    assert pooled["lofo"]["roc"]["tpr"][-1] == 1.0
    json_path, md_path = write_report(report, tmp_path, name="models")
    assert (json_path.name, md_path.name) == ("models.json", "models.md")
    loaded = json.loads(json_path.read_text())
    assert loaded["config"]["models"] == ["tree"]
    md = md_path.read_text()
    assert "roc_auc" in md
    assert "Benign families one by one (leave-one-family-out)" in md
    assert "injected-noise" in md
    assert "Not measured: needs two miner implementations" in md
    figures = {"roc": "models-roc.png", "families": "models-families.png", "noise": "models-noise.png"}
    for name in figures.values():
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG"), name
        assert f"]({name})" in md
    assert md == render_markdown(report, figures)


def test_cli_train_and_evaluate(dataset_dir: Path, dataset: Dataset, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--data", str(dataset_dir), "--out", str(tmp_path / "m"), "--model", "tree"])
    assert res.exit_code == 0, res.output
    art = load_artifact(tmp_path / "m")
    assert art.manifest.training_data.windows == len(dataset)
    onnx = OnnxModel(tmp_path / "m")
    np.testing.assert_allclose(onnx.score(dataset.X), art.detector.score(dataset.X), atol=1e-5)
    res = runner.invoke(
        app,
        ["evaluate", "--data", str(dataset_dir), "--report", str(tmp_path / "r"), "--models", "tree", "--k-folds", "2"],
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r" / "evaluation.md").is_file()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # the paper's MLP on 200 frames
def test_cli_evaluate_sequence_models_with_paper_and_window_comparison(synthetic_dir: Path, tmp_path: Path) -> None:
    """The evaluation of the sequence models on the tiny synthetic dataset, with the paper's setup and a window
    comparison (plumbing: the numbers of so small a dataset mean nothing)."""
    res = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--data",
            str(synthetic_dir),
            "--report",
            str(tmp_path),
            "--name",
            "seq",
            "--models",
            "lstm,lstm-ae",
            "--k-folds",
            "2",
            "--calibration",
            "train",
            "--fpr",
            "0.1",
            "--paper",
            "--paper-frames",
            "24",
            "--compare-windows",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "seq.json").read_text())
    assert list(report["pooled"]) == ["lstm", "lstm-ae"]
    assert report["config"]["kind_of_score"] == {"lstm": "miner probability", "lstm-ae": "anomaly score"}
    for model in ("lstm", "lstm-ae"):
        lofo = report["pooled"][model]["lofo"]
        assert lofo["window"]["n"] == report["dataset"]["windows"]
        assert lofo["roc"]["fpr"]
    paper = report["paper"]
    assert set(paper["results"]) == {"tree", "xgboost", "mlp", "lstm"}
    assert paper["frame_n"] == 35
    assert paper["per_run"] <= 24
    for res_model in paper["results"].values():
        assert set(res_model) == {"paper-random-70/30", "lofo"}
        assert 0.0 <= res_model["lofo"]["window"]["accuracy"] <= 1.0
    (row,) = report["window_comparison"]
    assert (row["model"], row["seconds"]) == ("xgboost", 1.0)
    assert {"lofo", "run-kfold"} <= set(row)
    assert "median_seconds" in row["lofo"]["alert_latency"]
    assert {"missed_miner_runs", "alerted_benign_runs", "noise"} <= set(row["lofo"])
    md = (tmp_path / "seq.md").read_text()
    for needle in (
        "paper's setup versus honest splits",
        "Window length (xgboost)",
        "seq-paper.png",
        "seq-roc.png",
        "Where each model fails",
        "**lstm-ae, lofo**: missed",
    ):
        assert needle in md
    assert "Δ accuracy" in md


def test_cli_rejects_unknown_models(dataset_dir: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["evaluate", "--data", str(dataset_dir), "--report", str(tmp_path), "--models", "svm"]
    )
    assert res.exit_code != 0
    assert "unknown model" in res.output
