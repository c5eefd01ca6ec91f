"""`minerlens train --feedback`: operator-judged windows (feedback-export lines) are trained on beside the lab
windows; windows of another feature spec are left out and counted; a file that is not such lines is refused."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from minerlens_core.features import FeatureSpec
from minerlens_core.models.manifest import read_manifest as load_manifest
from minerlens_core.models.onnx_model import OnnxModel
from minerlens_core.schemas.windows import FeatureWindow
from minerlens_training.cli import app as train_app
from typer.testing import CliRunner

from tests.explainer.factory import BENIGN_TRACE, feature_windows, pod_ref
from tests.training.conftest import SAMPLE


def _train(out: Path, *extra: str) -> str:
    args = ["train", "--data", str(SAMPLE), "--out", str(out), "--model", "tree", "--window-seconds", "2", *extra]
    res = CliRunner().invoke(train_app, args)
    assert res.exit_code == 0, res.output
    return res.output


def _lines(windows: list[FeatureWindow], label: int, feedback_id: str) -> list[str]:
    judgement = "miner" if label else "false_positive"
    head = {"label": label, "judgement": judgement, "feedback_id": feedback_id}
    return [json.dumps({**head, "window": json.loads(w.model_dump_json())}) for w in windows]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("baseline") / "model"
    _train(out)
    return out


def test_judged_windows_are_learnt(baseline: Path, tmp_path: Path) -> None:
    """A gzip job (not in the training sample) judged by an operator: judged a miner, the retrained model scores
    its windows higher than when the same windows are judged a false positive; the manifest says what it
    was trained on; judged windows of another feature spec are counted and left out."""
    before = OnnxModel(baseline)
    judged = feature_windows(BENIGN_TRACE, before.spec, pod_ref("batch", "gzip-0"))
    n = len(judged)
    assert n >= 5
    X = np.array([[np.nan if v is None else v for v in w.features] for w in judged], np.float32)
    v1 = FeatureSpec.build(before.spec.window, version="1")  # another feature spec (digest)
    other = _lines(feature_windows(BENIGN_TRACE, v1, pod_ref("b", "g"), limit=2), 0, "fb-2")

    scores = {}
    for label in (1, 0):
        path = tmp_path / f"feedback-{label}.jsonl"
        path.write_text("\n".join(_lines(judged, label, "fb-1") + other) + "\n")
        out = _train(tmp_path / f"model-{label}", "--feedback", str(path))
        assert f"feedback: {n} judged windows ({n * label} miner) from 1 judgements; 2 of another feature spec" in out
        model = OnnxModel(tmp_path / f"model-{label}")
        assert model.spec.digest == before.spec.digest
        scores[label] = model.score(X)
        training = load_manifest(tmp_path / f"model-{label}").training_data
        assert training.windows == load_manifest(baseline).training_data.windows + n
        assert training.miner_windows == load_manifest(baseline).training_data.miner_windows + n * label
        assert f"{n} operator-judged windows" in training.source
    assert scores[1].mean() > scores[0].mean() + 0.05, scores
    assert (scores[1] >= scores[0]).all(), scores


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{not json\n", "feedback.jsonl:1: not a feedback-export line"),
        ('{"label": 1}\n', "feedback.jsonl:1: not a feedback-export line"),
        ("LINE\n", "label must be 1 (miner) or 0 (false positive)"),
    ],
    ids=["not-json", "no-window", "bad-label"],
)
def test_unusable_feedback_is_refused_naming_the_line(baseline: Path, tmp_path: Path, text: str, error: str) -> None:
    if text == "LINE\n":
        (w,) = feature_windows(BENIGN_TRACE, OnnxModel(baseline).spec, pod_ref("b", "g"), limit=1)
        text = _lines([w], 1, "x")[0].replace('"label": 1', '"label": "yes"') + "\n"
    path = tmp_path / "feedback.jsonl"
    path.write_text(text)
    args = ["train", "--data", str(SAMPLE), "--out", str(tmp_path / "m"), "--model", "tree", "--window-seconds", "2",
            "--feedback", str(path)]  # fmt: skip
    res = CliRunner().invoke(train_app, args)
    assert res.exit_code == 2
    flat = re.sub(r"[\s│╭╮╰╯─]+", "", res.output)  # the error box wraps and frames the message
    assert error.replace(" ", "") in flat, res.output
    assert not (tmp_path / "m").exists()
