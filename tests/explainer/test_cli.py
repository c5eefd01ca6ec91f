"""``minerlens explainer token | run``: token lines, refusal to start unsafe, a real uvicorn server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import typer
from minerlens_explainer.auth import parse_tokens
from minerlens_explainer.cli import register
from typer.testing import CliRunner

from tests.explainer.conftest import Artifacts, Tokens, free_port

runner = CliRunner()
app = typer.Typer()
register(app)


def test_token_command_prints_a_usable_line() -> None:
    result = runner.invoke(app, ["explainer", "token", "--role", "admin"])
    assert result.exit_code == 0, result.output
    line = result.stdout.strip()
    assert line.startswith("admin:")
    assert [e.role for e in parse_tokens(line)] == ["admin"]
    assert runner.invoke(app, ["explainer", "token", "--role", "root"]).exit_code != 0


def test_run_refuses_to_start_without_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINERLENS_EXPLAINER_TOKENS_FILE", raising=False)
    result = runner.invoke(app, ["explainer", "run"])
    assert result.exit_code == 2
    assert "refuses to run without bearer tokens" in " ".join(result.output.split())
    weak = tmp_path / "tokens"
    weak.write_text("admin:changeme-changeme-changeme\n")
    monkeypatch.setenv("MINERLENS_EXPLAINER_TOKENS_FILE", str(weak))  # restored after the test
    result = runner.invoke(app, ["explainer", "run", "--tokens-file", str(weak)])
    assert result.exit_code == 2
    assert "placeholder" in " ".join(result.output.split())


@pytest.mark.redis
@pytest.mark.slow
def test_run_serves_http(artifacts: Artifacts, tokens: Tokens, redis_url: str, prefix: str) -> None:
    port = free_port()
    env = {
        **os.environ, "MINERLENS_EXPLAINER_REDIS_URL": redis_url, "MINERLENS_EXPLAINER_KEY_PREFIX": prefix,
        "MINERLENS_EXPLAINER_INGEST": "false",
    }  # fmt: skip
    cli = Path(sys.executable).with_name("minerlens")
    cmd = [str(cli), "explainer", "run", "--host", "127.0.0.1", "--port", str(port),
           "--tokens-file", str(tokens.path), "--model", str(artifacts.v1)]  # fmt: skip
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
        r = httpx.get(f"{base}/v1/models", headers=tokens.auth(), timeout=5)
        assert r.status_code == 200
        assert r.json()["models"][0]["name"] == "test-xgboost"
        assert "server" not in r.headers, "no server banner"
        assert httpx.get(f"{base}/v1/models", timeout=5).status_code == 401
        spec = httpx.get(f"{base}/openapi.json", timeout=5).json()
        assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    finally:
        server.terminate()
        server.wait(15)
