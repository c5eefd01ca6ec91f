"""``minerlens scorer models`` and ``minerlens scorer run``."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from minerlens_core.cli import _load_plugins, app
from minerlens_core.models import ONNX_FILE
from typer.testing import CliRunner

from tests.integration.services import require_kafka
from tests.scorer.helpers import copy_artifact

runner = CliRunner()
_load_plugins()


def test_models_lists_served_and_refused(models_dir: Path) -> None:
    bad = copy_artifact(models_dir / "xgboost-time1s", models_dir / "xgboost-bad", version="9.0.0")
    (bad / ONNX_FILE).write_bytes(b"not onnx")
    res = runner.invoke(app, ["scorer", "models", "--models-dir", str(models_dir)])
    assert res.exit_code == 0, res.output
    assert "xgboost-time1s" in res.output
    assert "primary" in res.output
    assert "xgboost-bad" in res.output
    assert "refused" in res.output


def test_models_fails_without_a_servable_model(tmp_path: Path) -> None:
    res = runner.invoke(app, ["scorer", "models", "--models-dir", str(tmp_path)])
    assert res.exit_code == 1


@pytest.mark.kafka
def test_run_for_a_few_seconds(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINERLENS_KAFKA_BOOTSTRAP", require_kafka())
    suffix = uuid.uuid4().hex[:10]
    for name in ("windows", "verdicts", "alerts", "state"):
        monkeypatch.setenv(f"MINERLENS_SCORER_{name.upper()}_TOPIC", f"test.cli.{name}.{suffix}")
    monkeypatch.setenv("MINERLENS_SCORER_GROUP_ID", f"test-cli-{suffix}")
    monkeypatch.setenv("MINERLENS_SCORER_HTTP_PORT", "0")
    res = runner.invoke(app, ["scorer", "run", "--seconds", "3", "--models-dir", str(models_dir)])
    assert res.exit_code == 0, res.output
    assert "verdicts 0, alerts 0, state 0, dead_letters 0" in res.output
