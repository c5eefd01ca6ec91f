"""Alerts are valid OCSF 1.8 Detection Findings (class 2004) with everything docs/alerts.md promises."""

from __future__ import annotations

import json
from typing import Any

import pytest
from minerlens_core.schemas.envelope import PodRef
from minerlens_core.schemas.ocsf import OCSF_VERSION, DetectionFinding, decode_finding
from minerlens_scorer.findings import explain_path

from tests.scorer.test_alerting import engine, feed

# OCSF 1.8.0: base event + finding + detection_finding attributes that are "required", plus the
# "recommended" ones minerlens always sets (a SIEM mapping relies on them).
REQUIRED = [
    "activity_id",
    "category_uid",
    "class_uid",
    "type_uid",
    "time",
    "severity_id",
    "metadata.version",
    "metadata.product.name",
    "metadata.product.vendor_name",
    "finding_info.uid",
    "finding_info.title",
    "finding_info.analytic.type_id",
]
RECOMMENDED = [
    "activity_name",
    "category_name",
    "class_name",
    "type_name",
    "severity",
    "message",
    "status_id",
    "status",
    "confidence_id",
    "is_alert",
    "resources",
    "metadata.uid",
    "metadata.correlation_uid",
    "finding_info.created_time",
    "finding_info.types",
    "finding_info.attacks",
]
UNMAPPED = {
    "alert_id",
    "pod_uid",
    "namespace",
    "pod",
    "container_id",
    "node",
    "cluster",
    "window_ids",
    "score",
    "threshold",
    "windows_over",
    "windows_seen",
    "model",
    "reasons",
    "explain_path",
}


def _get(doc: dict[str, Any], dotted: str) -> Any:
    cur: Any = doc
    for part in dotted.split("."):
        assert isinstance(cur, dict), f"{dotted}: not an object"
        assert part in cur, f"missing {dotted}"
        cur = cur[part]
    return cur


def _lifecycle() -> list[DetectionFinding]:
    e = engine()
    return feed(e, [0.95, 0.95, 0.97, 0.99, 0.99, 0.99, 0.99, 0.1, 0.1, 0.1])


def test_lifecycle_is_create_update_close() -> None:
    assert [f.activity_name for f in _lifecycle()] == ["Create", "Update", "Close"]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_wire_json_is_ocsf_detection_finding(index: int) -> None:
    f = _lifecycle()[index]
    wire = f.model_dump_json(exclude_none=True)
    doc = json.loads(wire)
    for path in REQUIRED + RECOMMENDED:
        assert _get(doc, path) is not None, path
    assert doc["class_uid"] == 2004
    assert doc["category_uid"] == 2
    assert doc["type_uid"] == 200400 + doc["activity_id"]
    assert doc["metadata"]["version"] == OCSF_VERSION
    assert doc["finding_info"]["analytic"] == {
        "type_id": 4,
        "type": "Learning (ML/DL)",
        "name": "minerlens-xgboost",
        "uid": "a" * 64,
        "version": "0.1.0",
    }
    assert doc["finding_info"]["attacks"][0]["technique"]["uid"] == "T1496"
    assert doc["time"] > 10**12, "milliseconds since the epoch"
    assert doc["finding_info"]["created_time"] <= doc["time"]
    assert doc["start_time"] <= doc["end_time"]
    assert doc["unmapped"]["minerlens"].keys() >= UNMAPPED
    assert decode_finding(wire) == f, "the alerts topic round-trips through the shared contract"


def test_fields_describe_the_pod() -> None:
    create, update, close = _lifecycle()
    doc = json.loads(update.model_dump_json(exclude_none=True))
    pod = doc["resources"][0]
    assert pod == {"type": "Kubernetes Pod", "uid": "uid-a", "name": "pod-uid-a", "namespace": "shop", "labels": []}
    assert doc["device"] == {"hostname": "node-1", "type_id": 1, "type": "Server"}
    assert doc["container"] == {"uid": "c0", "pod_uuid": "uid-a", "orchestrator": {"name": "kubernetes"}}
    m = doc["unmapped"]["minerlens"]
    assert (m["namespace"], m["pod"], m["node"], m["cluster"], m["container_id"]) == (
        "shop",
        "pod-uid-a",
        "node-1",
        "c",
        "c0",
    )
    assert m["model"] == {"name": "minerlens-xgboost", "version": "0.1.0", "manifest_sha256": "a" * 64}
    assert m["alert_id"] == doc["finding_info"]["uid"] == doc["metadata"]["correlation_uid"]
    assert m["reasons"][0]["text"] == "sched_yield 40%"
    assert m["explain_path"] == "/v1/pods/shop/pod-uid-a/explanation?window=" + "uid-a%2Fc0%2Ftime%3A1s%2F3"
    assert doc["finding_info"]["src_url"] == m["explain_path"]
    assert doc["severity"] == "High"
    assert doc["confidence_id"] in (1, 2, 3)
    assert 0 <= doc["confidence_score"] <= 100
    analysis = doc["anomaly_analyses"][0]
    assert analysis["anomalies"][0]["observation_parameter"] == "freq.sched_yield"
    assert analysis["anomalies"][0]["observed_pattern"] == "sched_yield 40%"
    assert analysis["baselines"][0]["observations"][0]["value"] == "0"
    # every event of one alert shares its id; event ids are unique
    assert len({f.finding_info.uid for f in (create, update, close)}) == 1
    assert len({f.metadata.uid for f in (create, update, close)}) == 3
    assert (create.status, update.status, close.status) == ("New", "In Progress", "Resolved")
    assert (create.is_alert, update.is_alert, close.is_alert) == (True, True, False)


def test_labels_and_explainer_base_url() -> None:
    from minerlens_scorer.alerting import AlertEngine
    from minerlens_scorer.findings import FindingFactory

    from tests.scorer.test_alerting import POLICY, verdict

    e = AlertEngine(POLICY, FindingFactory(POLICY, "9.9.9", "https://explainer.example/"), clock=lambda: 1.0)
    out = []
    for i in range(3):
        v = verdict(i, 0.95)
        pod = PodRef(uid="uid-a", namespace="shop", name="web-0", labels={"app": "web", "tier": "front"})
        out += e.observe(v.model_copy(update={"envelope": v.envelope.model_copy(update={"pod": pod})}))
    (f,) = out
    assert f.resources[0].labels == ["app=web", "tier=front"]
    assert f.metadata.product.version == "9.9.9"
    assert f.finding_info.src_url is not None
    assert f.finding_info.src_url.startswith("https://explainer.example/v1/pods/shop/web-0/explanation?window=")


def test_explain_path_needs_a_pod_name() -> None:
    assert explain_path("", "", "w") == ""
    assert explain_path("ns", "p", "a/b") == "/v1/pods/ns/p/explanation?window=a%2Fb"
