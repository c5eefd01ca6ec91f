"""One log format across services: ``MINERLENS_LOG_FORMAT=json`` gives JSON lines with the same fields everywhere;
``minerlens --version`` names what is installed; bad settings are usage errors."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from minerlens_core.cli import EXIT_CODES, app, versions
from minerlens_core.logs import FIELDS, configure_logging
from typer.testing import CliRunner


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_have_the_shared_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINERLENS_LOG_FORMAT", "json")
    monkeypatch.delenv("MINERLENS_SERVICE", raising=False)
    stream = io.StringIO()
    configure_logging("scorer", stream=stream)
    log = logging.getLogger("minerlens_scorer.service")
    log.info("scored %d windows", 12, extra={"batch": 7})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("a window failed")
    log.debug("not shown at INFO")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert set(FIELDS) <= set(first)
    assert first["message"] == "scored 12 windows"
    assert (first["level"], first["logger"], first["service"]) == ("INFO", "minerlens_scorer.service", "scorer")
    assert first["time"].endswith("Z")
    assert first["batch"] == 7
    assert second["level"] == "ERROR"
    assert "RuntimeError: boom" in second["exc_info"]


def test_text_is_the_default_and_service_and_level_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINERLENS_LOG_FORMAT", raising=False)
    monkeypatch.setenv("MINERLENS_LOG_LEVEL", "warning")
    stream = io.StringIO()
    configure_logging("collector", stream=stream)
    logging.getLogger("x").info("hidden")
    logging.getLogger("x").warning("shown")
    assert stream.getvalue().strip().endswith("WARNING x: shown")
    monkeypatch.setenv("MINERLENS_LOG_FORMAT", "json")
    monkeypatch.setenv("MINERLENS_SERVICE", "collector-node-a")
    stream = io.StringIO()
    configure_logging("collector", stream=stream)
    logging.getLogger("x").warning("shown")
    assert json.loads(stream.getvalue())["service"] == "collector-node-a"
    monkeypatch.setenv("MINERLENS_LOG_LEVEL", "LOUD")
    with pytest.raises(ValueError, match="MINERLENS_LOG_LEVEL"):
        configure_logging("collector")


def test_version_and_bad_log_format_exit_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0
    assert res.output.startswith(f"minerlens {versions()['minerlens-core']}")
    assert "schema_version 1" in res.output
    monkeypatch.setenv("MINERLENS_LOG_FORMAT", "xml")
    res = CliRunner().invoke(app, ["model", "--help"])
    assert res.exit_code == 2
    assert "MINERLENS_LOG_FORMAT" in res.output
    assert set(EXIT_CODES) == {0, 1, 2, 130}
