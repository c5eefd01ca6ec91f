"""Decode one message of the alerts topic: an alert, a message to skip, or poison for the dead-letter topic."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from minerlens_core.schemas.envelope import SCHEMA_VERSION
from minerlens_core.schemas.ocsf import DetectionFinding
from pydantic import ValidationError

from minerlens_siem.alert_view import AlertView, alert_view


@dataclass(frozen=True)
class Alert:
    finding: DetectionFinding
    document: dict[str, Any]
    """the OCSF JSON object exactly as received (forwarded unchanged by the stdout and HEC outputs)"""
    view: AlertView


@dataclass(frozen=True)
class Skip:
    reason: str


@dataclass(frozen=True)
class Poison:
    reason: str
    error: BaseException


class PoisonError(ValueError):
    """Why a message cannot be exported (carried in the dead-letter headers)."""


def _header(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return value.decode("utf-8", errors="replace")
    return None


def decode_alert(value: bytes | None, headers: Sequence[tuple[str, bytes]] | None = None) -> Alert | Skip | Poison:
    if value is None:
        return Skip("tombstone")
    version = _header(headers, "minerlens.schema_version")
    if version is not None and version.strip() != str(SCHEMA_VERSION):
        error = PoisonError(f"schema_version {version!r}, expected {SCHEMA_VERSION}")
        return Poison("unsupported_schema_version", error)
    try:
        document = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Poison("invalid_json", exc)
    if not isinstance(document, dict):
        return Poison("invalid_finding", PoisonError(f"expected a JSON object, got {type(document).__name__}"))
    try:
        finding = DetectionFinding.model_validate(document)
        view = alert_view(finding)
    except ValidationError as exc:
        return Poison("invalid_finding", exc)
    if not finding.metadata.version.startswith("1."):
        return Poison("unsupported_ocsf_version", PoisonError(f"OCSF {finding.metadata.version!r}, expected 1.x"))
    return Alert(finding=finding, document=document, view=view)
