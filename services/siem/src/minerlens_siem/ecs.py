"""OCSF Detection Finding -> Elastic Common Schema (ECS) alert document.

A source alert document: ``event.kind: alert`` (Elastic's own rule alerts use ``signal``), one
document per OCSF event (create, update, close share ``minerlens.alert_id``). The detector's
explanation lives under the custom top-level field set ``minerlens.*``. Fields without a value are
omitted, never sent as ``null``. The field list and types are documented in docs/integrations.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from minerlens_core.schemas.ocsf import DetectionFinding

from minerlens_siem.alert_view import AlertView, alert_view

ECS_VERSION = "8.17.0"
EVENT_CATEGORY = ("intrusion_detection", "process")
EVENT_TYPE = ("info",)
MITRE_FRAMEWORK = "MITRE ATT&CK"


def iso_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as an RFC 3339 UTC timestamp with millisecond precision (``...Z``)."""
    stamp = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def dedot(key: str) -> str:
    """ECS ``labels`` keys must not contain dots (Elasticsearch would expand them into objects)."""
    return key.replace(".", "_")


def mitre_reference(attack_id: str) -> str:
    kind = "tactics" if attack_id.startswith("TA") else "techniques"
    return f"https://attack.mitre.org/{kind}/{attack_id.replace('.', '/')}/"


def _prune(value: Any) -> Any:
    """Drop ``None``, empty dicts and empty lists, recursively (lists of scalars keep their items)."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _threat(view: AlertView) -> dict[str, Any]:
    tactics = [a for a in view.attacks if a.tactic_id]
    techniques = [a for a in view.attacks if a.technique_id]
    if not tactics and not techniques:
        return {}
    return {
        "framework": MITRE_FRAMEWORK,
        "tactic": {
            "id": [a.tactic_id for a in tactics],
            "name": [a.tactic_name or "" for a in tactics],
            "reference": [mitre_reference(a.tactic_id) for a in tactics if a.tactic_id],
        },
        "technique": {
            "id": [a.technique_id for a in techniques],
            "name": [a.technique_name or "" for a in techniques],
            "reference": [mitre_reference(a.technique_id) for a in techniques if a.technique_id],
        },
    }


def view_to_ecs(view: AlertView) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@timestamp": iso_ms(view.time_ms),
        "ecs": {"version": ECS_VERSION},
        "message": view.message,
        "event": {
            "kind": "alert",
            "category": list(EVENT_CATEGORY),
            "type": list(EVENT_TYPE),
            "action": view.activity,
            "id": view.event_uid,
            "code": str(view.type_uid),
            "severity": view.severity_id,
            "risk_score": view.risk_score,
            "risk_score_norm": view.risk_score,
            "created": iso_ms(view.created_ms) if view.created_ms is not None else None,
            "start": iso_ms(view.first_seen_ms) if view.first_seen_ms is not None else None,
            "end": iso_ms(view.last_seen_ms) if view.last_seen_ms is not None else None,
            "module": "minerlens",
            "dataset": "minerlens.alerts",
            "provider": "minerlens",
            "reference": view.explain_url,
            "reason": view.reasons_summary() or None,
        },
        "rule": {
            "id": view.analytic_uid or view.analytic_name,
            "name": view.analytic_name,
            "version": view.model_version,
            "description": view.description or view.title,
            "category": view.analytic_type,
            "ruleset": "minerlens",
            "author": ["minerlens"],
        },
        "threat": _threat(view),
        "orchestrator": {
            "type": "kubernetes",
            "namespace": view.namespace,
            "cluster": {"name": view.cluster},
            "resource": {
                "type": "pod",
                "name": view.pod,
                "id": view.pod_uid,
                "label": [f"{k}={v}" for k, v in view.pod_labels.items()],
            },
        },
        "container": {
            "id": view.container_id,
            "image": (
                {
                    "name": view.image.name,
                    "tag": [view.image.tag] if view.image.tag else None,
                    "hash": {"all": [view.image.digest]} if view.image.digest else None,
                }
                if view.image
                else None
            ),
        },
        "process": (
            {"pid": view.process.pid, "name": view.process.comm or None, "executable": view.process.exe or None}
            if view.process
            else None
        ),
        "host": {"name": view.node, "hostname": view.node},
        "related": {"hosts": [view.node] if view.node else []},
        "labels": {dedot(k): v for k, v in view.pod_labels.items()},
        "observer": {"vendor": "minerlens", "product": "minerlens", "version": view.product_version, "type": "ids"},
        "minerlens": {
            "alert_id": view.alert_id,
            "activity": view.activity,
            "title": view.title,
            "severity": view.severity,
            "score": view.score,
            "threshold": view.threshold,
            "windows_over": view.windows_over,
            "windows_seen": view.windows_seen,
            "window_ids": view.window_ids,
            "confidence_score": view.confidence_score,
            "model": {"name": view.model_name, "version": view.model_version},
            "reasons": [
                {
                    "feature": r.feature,
                    "value": r.value,
                    "baseline": r.baseline,
                    "contribution": r.contribution,
                    "text": r.text or None,
                }
                for r in view.reasons
            ],
            "explain_path": view.explain_path,
            "explain_url": view.explain_url,
            "ocsf": {"version": view.ocsf_version, "class_uid": 2004, "type_uid": view.type_uid},
        },
    }
    result: dict[str, Any] = _prune(doc)
    return result


def to_ecs(finding: DetectionFinding) -> dict[str, Any]:
    """The ECS document of ``finding`` (a plain JSON-serialisable dict, nested objects)."""
    return view_to_ecs(alert_view(finding))
