"""OCSF -> ECS: every emitted field is an ECS 8.x field (or a documented minerlens.* field) of the right type."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from minerlens_core.schemas.ocsf import DetectionFinding
from minerlens_siem.alert_view import alert_view
from minerlens_siem.ecs import ECS_VERSION, to_ecs
from pydantic import ValidationError

from tests.siem.findings import ALERT_ID, CONTAINER_ID, POD_UID, T0_MS, finding_json, make_finding

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"

# Types from the ECS 8.17 field reference (https://www.elastic.co/guide/en/ecs/8.17/ecs-field-reference.html);
# "[]" = the field holds an array of values. Written independently of the mapping under test.
ECS_REFERENCE = {
    "@timestamp": "date",
    "message": "match_only_text",
    "ecs.version": "keyword",
    "event.kind": "keyword",
    "event.category": "keyword[]",
    "event.type": "keyword[]",
    "event.action": "keyword",
    "event.id": "keyword",
    "event.code": "keyword",
    "event.severity": "long",
    "event.risk_score": "float",
    "event.risk_score_norm": "float",
    "event.created": "date",
    "event.start": "date",
    "event.end": "date",
    "event.module": "keyword",
    "event.dataset": "keyword",
    "event.provider": "keyword",
    "event.reference": "keyword",
    "event.reason": "keyword",
    "rule.id": "keyword",
    "rule.name": "keyword",
    "rule.version": "keyword",
    "rule.description": "keyword",
    "rule.category": "keyword",
    "rule.ruleset": "keyword",
    "rule.author": "keyword[]",
    "threat.framework": "keyword",
    "threat.tactic.id": "keyword[]",
    "threat.tactic.name": "keyword[]",
    "threat.tactic.reference": "keyword[]",
    "threat.technique.id": "keyword[]",
    "threat.technique.name": "keyword[]",
    "threat.technique.reference": "keyword[]",
    "orchestrator.type": "keyword",
    "orchestrator.namespace": "keyword",
    "orchestrator.cluster.name": "keyword",
    "orchestrator.resource.type": "keyword",
    "orchestrator.resource.name": "keyword",
    "orchestrator.resource.id": "keyword",
    "orchestrator.resource.label": "keyword[]",
    "container.id": "keyword",
    "host.name": "keyword",
    "host.hostname": "keyword",
    "related.hosts": "keyword[]",
    "labels": "object",
    "observer.vendor": "keyword",
    "observer.product": "keyword",
    "observer.version": "keyword",
    "observer.type": "keyword",
}
EVENT_KIND = {"alert", "asset", "enrichment", "event", "metric", "state", "pipeline_error", "signal"}
EXPECTED_TYPES = {
    "intrusion_detection": {"allowed", "denied", "info"},
    "process": {"access", "change", "end", "info", "start"},
}
ALWAYS_REQUIRED = {"@timestamp", "ecs.version", "event.kind", "event.category", "event.type"}  # Elastic Security


def documented_fields() -> dict[str, str]:
    """The ECS mapping table of docs/integrations.md: | `field` | type | ... |."""
    rows = re.findall(r"^\|\s*`([^`]+)`\s*\|\s*([a-z_\[\]]+)\s*\|", DOC.read_text(), flags=re.MULTILINE)
    return dict(rows)


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted leaf fields; ``labels`` is one object field; arrays of objects flatten per element (``name[]``)."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if name == "labels":
            out[name] = value
        elif isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                for sub, v in flatten(item, f"{name}[].").items():
                    out.setdefault(sub, v)
        else:
            out[name] = value
    return out


def check_type(field: str, kind: str, value: Any) -> None:
    if kind.endswith("[]"):
        assert isinstance(value, list), f"{field}: expected an array, got {value!r}"
        for v in value:
            check_type(field, kind[:-2], v)
        return
    if kind in ("keyword", "text", "match_only_text"):
        assert isinstance(value, str), f"{field}: expected a string, got {value!r}"
    elif kind == "date":
        assert isinstance(value, str), f"{field}: expected a date string, got {value!r}"
        assert value.endswith("Z"), f"{field}: expected RFC 3339 UTC, got {value!r}"
        datetime.fromisoformat(value)
    elif kind == "long":
        assert isinstance(value, int), f"{field}: expected an integer, got {value!r}"
        assert not isinstance(value, bool), f"{field}: expected an integer, got {value!r}"
    elif kind in ("float", "scaled_float"):
        assert isinstance(value, int | float), f"{field}: expected a number, got {value!r}"
        assert not isinstance(value, bool), f"{field}: expected a number, got {value!r}"
    elif kind == "object":
        assert isinstance(value, dict), field
        assert all(isinstance(v, str) for v in value.values()), f"{field}: values must be strings"
        assert not any("." in k for k in value), f"{field}: keys must not contain dots: {list(value)}"
    else:
        raise AssertionError(f"unknown type {kind} for {field}")


def validate_ecs(doc: dict[str, Any]) -> dict[str, Any]:
    documented = documented_fields()
    flat = flatten(doc)
    assert set(flat) >= ALWAYS_REQUIRED
    for field, value in flat.items():
        assert value is not None, f"{field} is null (absent values must be omitted)"
        if field.startswith("minerlens."):
            assert field in documented, f"custom field {field} is not documented in docs/integrations.md"
            check_type(field, documented[field], value)
        else:
            assert field in ECS_REFERENCE, f"{field} is not an ECS field"
            check_type(field, ECS_REFERENCE[field], value)
            assert documented.get(field) == ECS_REFERENCE[field], f"{field}: docs say {documented.get(field)}"
    assert flat["event.kind"] in EVENT_KIND
    for category in flat["event.category"]:
        assert set(flat["event.type"]) <= EXPECTED_TYPES[category]
    return flat


@pytest.mark.parametrize(("activity_id", "action"), [(1, "create"), (2, "update"), (3, "close")])
def test_each_activity_maps_to_a_valid_ecs_alert(activity_id: int, action: str) -> None:
    finding = make_finding(activity_id=activity_id)
    # the input is a valid OCSF Detection Finding as it travels on the topic
    DetectionFinding.model_validate_json(finding_json(finding))
    flat = validate_ecs(to_ecs(finding))
    assert flat["event.kind"] == "alert"
    assert flat["event.action"] == action
    assert flat["event.code"] == str(200400 + activity_id)
    assert flat["minerlens.alert_id"] == ALERT_ID
    assert flat["event.id"] == f"{ALERT_ID}:{activity_id}:1"


def test_field_values_come_from_the_finding() -> None:
    doc = to_ecs(make_finding(severity_id=5))
    flat = validate_ecs(doc)
    assert flat["@timestamp"] == "2026-01-01T00:00:00.123Z"
    assert flat["ecs.version"] == ECS_VERSION
    assert flat["event.severity"] == 5
    assert flat["event.risk_score"] == pytest.approx(97.3)
    assert flat["event.start"] == "2025-12-31T23:59:10.123Z"
    assert flat["rule.name"] == "xgb-syscalls"
    assert flat["rule.version"] == "2026.01.3"
    assert flat["threat.framework"] == "MITRE ATT&CK"
    assert flat["threat.tactic.id"] == ["TA0040"]
    assert flat["threat.technique.id"] == ["T1496"]
    assert flat["threat.technique.reference"] == ["https://attack.mitre.org/techniques/T1496/"]
    assert flat["orchestrator.type"] == "kubernetes"
    assert flat["orchestrator.namespace"] == "shop"
    assert flat["orchestrator.resource.name"] == "checkout-7d9f8b6c5-x2k4q"
    assert flat["orchestrator.resource.id"] == POD_UID
    assert flat["orchestrator.cluster.name"] == "prod-eu"
    assert flat["container.id"] == CONTAINER_ID
    assert flat["host.name"] == "node-a"
    assert doc["labels"] == {"app": "checkout", "app_kubernetes_io/part-of": "shop"}
    assert flat["orchestrator.resource.label"] == ["app=checkout", "app.kubernetes.io/part-of=shop"]
    assert flat["minerlens.score"] == pytest.approx(0.973)
    assert flat["minerlens.windows_over"] == 4
    assert flat["minerlens.model.version"] == "2026.01.3"
    reasons = doc["minerlens"]["reasons"]
    assert [r["feature"] for r in reasons] == ["rate.sched_yield", "share.futex", "entropy.ngram2"]
    assert reasons[0] == {
        "feature": "rate.sched_yield",
        "value": 1843.5,
        "baseline": 12.0,
        "contribution": 0.41,
        "text": "sched_yield at 1844/s vs 12/s for benign pods",
    }
    assert "text" not in reasons[2]  # empty text omitted, never null
    assert flat["event.reason"].startswith("sched_yield at 1844/s vs 12/s for benign pods; futex is 62%")
    assert flat["minerlens.explain_path"].startswith("/v1/pods/shop/checkout-7d9f8b6c5-x2k4q/explanation?window=")
    json.dumps(doc, allow_nan=False)  # serialisable as strict JSON


def test_minimal_finding_without_minerlens_details_still_maps() -> None:
    finding = make_finding(unmapped={}, labels=[])
    flat = validate_ecs(to_ecs(finding))
    assert "container.id" not in flat
    assert "minerlens.score" not in flat
    assert "labels" not in flat
    assert flat["minerlens.model.name"] == "xgb-syscalls"  # from finding_info.analytic
    # reasons fall back to the OCSF anomaly_analyses
    assert flat["minerlens.reasons[].feature"] == "rate.sched_yield"
    assert flat["minerlens.reasons[].value"] == pytest.approx(1843.5)


def test_mistyped_details_are_refused() -> None:
    finding = make_finding(unmapped={"minerlens": {"score": "very high", "reasons": "none"}})
    with pytest.raises(ValidationError):
        alert_view(finding)


def test_timestamps_are_utc_milliseconds() -> None:
    doc = to_ecs(make_finding())
    stamps = [doc["@timestamp"], doc["event"]["created"], doc["event"]["start"], doc["event"]["end"]]
    for stamp in stamps:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    assert datetime.fromisoformat(doc["@timestamp"]).timestamp() * 1000 == pytest.approx(T0_MS)
