"""Explanation-quality measurements: the measures themselves, and a small end-to-end run with its report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from minerlens_core.features import FeatureSpec
from minerlens_training.artifacts import TrainingData, save_artifact
from minerlens_training.datasets import Dataset
from minerlens_training.detectors import make_detector
from minerlens_training.explain.quality import QualityConfig, curve_auc, jaccard, measure_all, rank_correlation
from minerlens_training.explain.quality_report import write_quality_report

from tests.training.test_explain_sequence import build_toy_autoencoder


def test_measures() -> None:
    assert curve_auc([1.0, 1.0, 1.0], [0, 1, 2]) == pytest.approx(1.0)
    assert curve_auc([1.0, 0.0, 0.0], [0, 1, 2]) == pytest.approx(0.25)
    assert curve_auc([0.0, 1.0], [0, 10]) == pytest.approx(0.5)
    assert jaccard(["a", "b"], ["b", "c"]) == pytest.approx(1 / 3)
    assert jaccard([], []) == 1.0
    assert rank_correlation({"a": 3.0, "b": 2.0, "c": 1.0}, {"a": 3.0, "b": 2.0, "c": 1.0}) == pytest.approx(1.0)
    assert rank_correlation({"a": 3.0, "b": 2.0, "c": 1.0}, {"a": 1.0, "b": 2.0, "c": 3.0}) == pytest.approx(-1.0)
    assert rank_correlation({"a": 1.0}, {"a": 1.0}) is None


def test_quality_run_and_report(dataset_dir: Path, dataset: Dataset, tmp_path: Path) -> None:
    det = make_detector("xgboost", seed=0, n_estimators=20).fit(dataset.X, dataset.y)
    det.infer_threshold(dataset.X[dataset.y == 0], 0.05)
    model = tmp_path / "xgb"
    save_artifact(
        det, model, FeatureSpec.default(), TrainingData(manifest_sha256="0" * 64), reference=(dataset.X, dataset.y)
    )
    ae = build_toy_autoencoder(tmp_path / "ae")
    cfg = QualityConfig(windows=4, pairs=4, methods=("shap", "lime"), random_orders=1, top=10, steps=(0, 1, 2, 5, 10))
    messages: list[str] = []
    result = measure_all([dataset_dir], [model], [ae], cfg, progress=messages.append)
    assert any("faithfulness" in m for m in messages)
    js, md = write_quality_report(result, tmp_path / "report")
    data = json.loads(js.read_text())
    (xgb, toy) = data["models"]
    assert [m["method"] for m in xgb["methods"]] == ["shap", "lime"]
    assert [m["method"] for m in toy["methods"]] == ["lstm-ae"]
    for model_data in (xgb, toy):
        for q in model_data["methods"]:
            assert q["windows"] == min(4, model_data["flagged"])
            assert q["cost_ms"]["n"] >= q["windows"]
            assert q["stability"]["pairs"] >= 1
            for key in ("deletion", "insertion", "deletion_random", "insertion_random"):
                auc = q["auc"][key]["mean"]
                assert auc is None or 0.0 <= auc <= 1.0
            curves = q["curves"]
            if q["windows"]:
                assert curves["deletion"][0] == pytest.approx(q["score"]["mean"], abs=1e-4)  # k = 0: the window itself
                assert np.all(np.diff(curves["insertion_random"]) > -1.0)
    shap = xgb["methods"][0]
    assert shap["windows"] > 0
    assert shap["auc"]["deletion"]["mean"] <= shap["auc"]["deletion_random"]["mean"] + 1e-9
    assert xgb["methods"][1]["lime_r2"]["n"] > 0
    text = md.read_text()
    assert "| minerlens-xgboost 0.1.0 | shap |" in text
    assert "### lstm-ae" in text
    assert "deletion, random" in text
    assert "Example (" in text
