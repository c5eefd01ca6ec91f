"""End to end: evaluation report on the small dataset, and the train/evaluate commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from minerlens_training.artifacts import OnnxModel, load_artifact
from minerlens_training.cli import app
from minerlens_training.datasets import Dataset
from minerlens_training.evaluate import EvalConfig, evaluate
from minerlens_training.metrics import AlertPolicy
from minerlens_training.report import render_markdown, write_report
from typer.testing import CliRunner


def test_evaluate_report(dataset: Dataset, tmp_path: Path) -> None:
    report = evaluate(dataset, EvalConfig(models=("tree",), fpr=0.1, policy=AlertPolicy(2, 3), k_folds=2))
    pooled = report["pooled"]["tree"]
    assert set(pooled) == {"lofo", "run-kfold", "leaky-random"}
    # every window is scored exactly once in the pooled LOFO and run-k-fold results
    for scheme in ("lofo", "run-kfold"):
        assert pooled[scheme]["window"]["n"] == len(dataset)
        assert sorted(r["run"] for r in pooled[scheme]["runs"]) == list(range(len(dataset.runs)))
    lofo = [s for s in report["splits"] if s["scheme"] == "lofo"]
    assert len(lofo) == len(dataset.families("benign")) + len(dataset.families("miner"))
    noise = {g["group"] for g in pooled["run-kfold"]["noise"]}
    assert "0%" in noise
    json_path, md_path = write_report(report, tmp_path)
    loaded = json.loads(json_path.read_text())
    assert loaded["config"]["models"] == ["tree"]
    md = md_path.read_text()
    assert "roc_auc" in md
    assert "Leave-one-family-out" in md
    assert "injected-noise" in md
    assert md == render_markdown(report)


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
