"""Settings (secrets refused when empty or default) and the `minerlens siem` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from minerlens_core.cli import app
from minerlens_siem.cli import register
from minerlens_siem.settings import SiemSettings
from pydantic import ValidationError
from typer.testing import CliRunner

from tests.siem.findings import finding_json, make_finding
from tests.siem.test_cef import parse_cef

GOOD_TOKEN = "5f0a7c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MINERLENS_SIEM_OUTPUT", "MINERLENS_SIEM_HEC_TOKEN", "MINERLENS_SIEM_HEC_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_need_no_secret() -> None:
    s = SiemSettings()
    assert s.output == "stdout"
    assert s.topic == "minerlens.alerts.v1"
    assert s.consumer_group == "minerlens-siem-stdout"


@pytest.mark.parametrize(
    "token", ["", "   ", "changeme", "CHANGEME", "00000000-0000-0000-0000-000000000000", "<token>"]
)
def test_hec_refuses_empty_or_placeholder_tokens(token: str) -> None:
    with pytest.raises(ValidationError, match="token"):
        SiemSettings(output="splunk-hec", hec_token=token)


def test_hec_refuses_tokens_with_control_characters() -> None:
    with pytest.raises(ValidationError, match="whitespace or control"):
        SiemSettings(output="splunk-hec", hec_token="abc\r\nX-Injected: 1")


def test_hec_token_from_env_and_from_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MINERLENS_SIEM_OUTPUT", "splunk-hec")
    monkeypatch.setenv("MINERLENS_SIEM_HEC_TOKEN", GOOD_TOKEN)
    s = SiemSettings()
    assert s.resolved_hec_token() == GOOD_TOKEN
    assert GOOD_TOKEN not in repr(s)  # a SecretStr never prints
    monkeypatch.delenv("MINERLENS_SIEM_HEC_TOKEN")
    secret = tmp_path / "token"
    secret.write_text(GOOD_TOKEN + "\n")
    monkeypatch.setenv("MINERLENS_SIEM_HEC_TOKEN_FILE", str(secret))
    assert SiemSettings().resolved_hec_token() == GOOD_TOKEN
    monkeypatch.setenv("MINERLENS_SIEM_HEC_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValidationError, match="cannot read the HEC token file"):
        SiemSettings()


def test_hec_refuses_plain_http_unless_allowed() -> None:
    with pytest.raises(ValidationError, match="clear"):
        SiemSettings(output="splunk-hec", hec_token=GOOD_TOKEN, hec_url="http://splunk:8088")
    s = SiemSettings(
        output="splunk-hec", hec_token=GOOD_TOKEN, hec_url="http://splunk:8088", hec_allow_insecure_http=True
    )
    assert s.hec_url == "http://splunk:8088"


def test_a_poll_must_fit_in_the_hec_queue() -> None:
    with pytest.raises(ValidationError, match="overflow"):
        SiemSettings(output="splunk-hec", hec_token=GOOD_TOKEN, max_records=100, hec_queue_max_events=50)


def _cli() -> CliRunner:
    register(app)
    return CliRunner()


def test_run_refuses_a_missing_token_with_a_clear_message() -> None:
    result = _cli().invoke(app, ["siem", "run", "--output", "splunk-hec", "--seconds", "0.1"])
    assert result.exit_code == 2
    assert "needs a HEC token" in result.output


def test_convert_prints_each_mapping(tmp_path: Path) -> None:
    src = tmp_path / "alerts.jsonl"
    src.write_bytes(finding_json(make_finding()) + b"\n" + finding_json(make_finding(activity_id=3)) + b"\n")
    runner = _cli()
    ecs = runner.invoke(app, ["siem", "convert", str(src), "--to", "ecs"])
    assert ecs.exit_code == 0, ecs.output
    docs = [json.loads(line) for line in ecs.stdout.splitlines()]
    assert [d["event"]["action"] for d in docs] == ["create", "close"]
    cef = runner.invoke(app, ["siem", "convert", str(src), "--to", "cef"])
    header, _ = parse_cef(cef.stdout.splitlines()[0])
    assert header[4] == "200401"
    hec = runner.invoke(app, ["siem", "convert", str(src), "--to", "hec"])
    assert json.loads(hec.stdout.splitlines()[1])["event"]["activity_id"] == 3


def test_convert_reports_invalid_findings(tmp_path: Path) -> None:
    src = tmp_path / "bad.json"
    src.write_text(json.dumps({"class_uid": 2004, "activity_id": 9}))
    result = _cli().invoke(app, ["siem", "convert", str(src)])
    assert result.exit_code == 1
    assert "invalid_finding" in result.output
