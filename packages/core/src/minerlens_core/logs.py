"""Logging for every minerlens process: plain text for people, JSON lines for log pipelines.

``MINERLENS_LOG_FORMAT`` = ``text`` (default) or ``json``; ``MINERLENS_LOG_LEVEL`` = a level name (default
INFO, DEBUG with ``--verbose``). JSON lines carry the same fields in every service::

    {"time": "2026-12-07T15:01:02.345Z", "level": "WARNING", "logger": "minerlens_scorer.service",
     "message": "...", "service": "scorer", "pid": 4242, "exc_info": "..."}

plus whatever a call passes in ``extra={...}``. ``service`` is ``MINERLENS_SERVICE`` if set, else the name
given to :func:`configure_logging` (the CLI passes the command: ``scorer``, ``featurizer``...).
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FIELDS = ("time", "level", "logger", "message", "service", "pid")
"""the fields every JSON log line has (``exc_info`` when an exception is logged, plus ``extra``)"""


class _Json(JsonFormatter):
    def __init__(self, service: str) -> None:
        super().__init__(rename_fields={"levelname": "level", "name": "logger"}, timestamp=False)
        self._service = service

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        when = datetime.fromtimestamp(record.created, UTC)
        log_data["time"] = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["service"] = self._service
        log_data["pid"] = record.process


def log_format() -> LogFormat:
    value = os.environ.get("MINERLENS_LOG_FORMAT", "text").strip().lower()
    if value not in ("text", "json"):
        msg = f"MINERLENS_LOG_FORMAT must be text or json, not {value!r}"
        raise ValueError(msg)
    return "json" if value == "json" else "text"


def configure_logging(service: str = "minerlens", *, verbose: bool = False, stream: Any = None) -> None:
    """Set up the root logger once per process (replacing handlers a previous call installed)."""
    level_name = os.environ.get("MINERLENS_LOG_LEVEL", "DEBUG" if verbose else "INFO").strip().upper()
    level = logging.getLevelName(level_name)
    if not isinstance(level, int):
        msg = f"MINERLENS_LOG_LEVEL: unknown level {level_name!r}"
        raise ValueError(msg)
    handler = logging.StreamHandler(stream or sys.stderr)
    name = os.environ.get("MINERLENS_SERVICE") or service
    handler.setFormatter(_Json(name) if log_format() == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
