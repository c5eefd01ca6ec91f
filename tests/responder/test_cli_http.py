"""`minerlens responder decide/check-policy` and the service's HTTP port (/healthz, /readyz, /metrics)."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import typer
from minerlens_core.http_probes import probe_app, serve
from minerlens_core.settings import KafkaSettings
from minerlens_responder.cli import register
from minerlens_responder.policy import parse_policy
from minerlens_responder.responder import Responder
from minerlens_responder.service import ResponderService
from minerlens_responder.settings import ResponderSettings
from typer.testing import CliRunner

from tests.responder.alerts import make_finding

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "deploy" / "helm" / "minerlens" / "files" / "responder-policy.yaml"

app = typer.Typer()
register(app)
runner = CliRunner()


def test_decide_prints_the_dry_run_record(tmp_path: Path) -> None:
    alert = tmp_path / "alert.json"
    alert.write_text(make_finding(severity_id=5, score=0.99).model_dump_json())
    res = runner.invoke(app, ["responder", "decide", str(alert), "--policy", str(POLICY)])
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)
    assert record["mode"] == "dry-run"
    assert record["rule"] == "critical-isolate-and-evict"
    assert [a["action"] for a in record["actions"]] == ["annotate", "event", "isolate", "evict"]
    assert {a["outcome"] for a in record["actions"]} == {"planned"}


def test_decide_refuses_a_non_alert(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"class_uid": 2004}')
    res = runner.invoke(app, ["responder", "decide", str(bad), "--policy", str(POLICY)])
    assert res.exit_code == 2
    assert "not an alert" in res.output


def test_check_policy(tmp_path: Path) -> None:
    res = runner.invoke(app, ["responder", "check-policy", str(POLICY)])
    assert res.exit_code == 0, res.output
    assert "valid" in res.output
    assert "critical-isolate-and-evict" in res.output
    broken = tmp_path / "p.yaml"
    broken.write_text("rules: [{name: x, actions: [nuke]}]")
    res = runner.invoke(app, ["responder", "check-policy", str(broken)])
    assert res.exit_code == 2
    assert "invalid policy" in res.output


async def test_health_ready_and_metrics_endpoints() -> None:
    service = ResponderService(Responder(parse_policy("rules: []")), ResponderSettings(http_port=0), KafkaSettings())
    http, port = await serve(probe_app(service.metrics.registry, service.health, service.ready), "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                assert r.status == 200
                assert (await r.json())["mode"] == "dry-run"
            async with s.get(f"http://127.0.0.1:{port}/readyz") as r:
                assert r.status == 503  # not consuming yet
            async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                assert r.status == 200
                assert "minerlens_responder_decisions_total" in await r.text()
    finally:
        await http.cleanup()
