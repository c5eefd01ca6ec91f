"""``minerlens featurizer spec --json``: the served feature spec as a JSON array of one object."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from minerlens_featurizer.cli import register
from minerlens_featurizer.settings import FeaturizerSettings
from minerlens_featurizer.spec import served_spec
from typer.testing import CliRunner

MODEL = Path(__file__).resolve().parents[2] / "models" / "default"
app = typer.Typer()
register(app)
runner = CliRunner()


def test_spec_json_default_and_from_a_model() -> None:
    res = runner.invoke(app, ["featurizer", "spec", "--json"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)
    default = served_spec(FeaturizerSettings(model_dir=None))
    assert row == {
        "policy": default.tag, "digest": default.spec.digest, "dim": default.spec.dim,
        "feature_version": default.spec.version, "model": None,
    }  # fmt: skip
    res = runner.invoke(app, ["featurizer", "spec", "--model-dir", str(MODEL), "--json"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)
    served = served_spec(FeaturizerSettings(model_dir=MODEL))
    assert row["digest"] == served.spec.digest
    assert served.model is not None
    assert row["model"] == {"name": served.model.name, "version": served.model.version}
