"""``minerlens watch --json``: no live table; at the end, one JSON array of the pods' rows on stdout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from minerlens_core.cli import _load_plugins, app
from minerlens_core.pipeline_view import COLUMNS, PipelineView
from typer.testing import CliRunner

from tests.core.test_pipeline_view import NOW, SEC, verdict
from tests.integration.services import kafka_bootstrap, require_kafka
from tests.responder.alerts import make_finding

KEYS = {c.replace(" ", "_") for c in COLUMNS}
runner = CliRunner()
_load_plugins()


def test_watch_json_prints_the_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    view = PipelineView()
    view.add_verdict(verdict("u1", NOW, 0.9, name="miner-0"))
    view.add_verdict(verdict("u1", NOW + 2 * SEC, 0.7, name="miner-0"))
    view.add_verdict(verdict("u2", NOW, 0.1))
    view.add_alert(make_finding(pod_uid="u1", namespace="shop", pod="miner-0"))

    def fake_run_watch(*args: Any, live: bool = True, **kwargs: Any) -> PipelineView:
        assert not live, "no live table with --json"
        return view

    monkeypatch.setattr("minerlens_core.pipeline_view.run_watch", fake_run_watch)
    result = runner.invoke(app, ["watch", "--seconds", "0", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [set(r) for r in rows] == [KEYS, KEYS]
    miner, web = rows
    assert miner["pod"] == "shop/miner-0"
    assert (miner["windows"], miner["miner"], miner["no_data"]) == (2, 2, 0)
    assert (miner["last_score"], miner["max"]) == (0.7, 0.9)
    assert miner["alert"] == "OPEN"
    assert miner["severity"] == "High"
    assert web == {
        "pod": "shop/web-0", "windows": 1, "miner": 0, "no_data": 0, "last_score": 0.1, "max": 0.1,
        "process": None, "alert": None, "severity": None,
    }  # fmt: skip
    assert "ALERT OPEN shop/miner-0" in result.stderr, "the alert report goes to stderr with --json"


def test_watch_json_against_kafka(monkeypatch: pytest.MonkeyPatch) -> None:
    require_kafka()
    monkeypatch.setenv("MINERLENS_KAFKA_BOOTSTRAP", kafka_bootstrap())
    result = runner.invoke(app, ["watch", "--seconds", "1", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)  # whatever other runs send meanwhile: still one JSON array of rows
    assert isinstance(rows, list)
    assert all(set(r) == KEYS for r in rows)


def test_model_verify_json_has_a_row_per_artifact(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "models" / "default"
    res = runner.invoke(app, ["model", "verify", "--no-onnx", "--json", str(shipped), str(tmp_path)])
    assert res.exit_code != 0, "one artifact is refused"
    ok, refused = json.loads(res.stdout)
    assert ok["artifact"] == str(shipped)
    assert ok["status"] == "ok"
    assert ok["model"]
    assert len(ok["manifest_sha256"]) == 64
    assert ok["error"] is None
    assert refused["status"] == "refused"
    assert "manifest.json" in refused["error"]
