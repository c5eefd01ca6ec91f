"""Alerts as the scorer emits them: OCSF Detection Findings with the minerlens block under ``unmapped``."""

from __future__ import annotations

from typing import Any

from minerlens_core.schemas.ocsf import SEVERITY, DetectionFinding

POD_UID = "6f1c2d3e-0000-4000-8000-00000000abcd"
ACTIVITY = {1: "Create", 2: "Update", 3: "Close"}


def make_finding(
    *,
    alert_id: str = "al-0001",
    namespace: str = "shop",
    pod: str = "web-5d9f-abcde",
    pod_uid: str = POD_UID,
    severity_id: int = 4,
    score: float | None = 0.97,
    activity_id: int = 1,
    labels: dict[str, str] | None = None,
    seq: int = 1,
) -> DetectionFinding:
    minerlens: dict[str, Any] = {
        "alert_id": alert_id,
        "pod_uid": pod_uid,
        "namespace": namespace,
        "pod": pod,
        "reasons": [
            {"feature": "rate.futex", "value": 9100.0, "contribution": 0.41, "text": "futex rate 9100/s (baseline 40)"},
            {"feature": "share.sched_yield", "value": 0.2, "contribution": 0.22, "text": "sched_yield 20% of calls"},
        ],
        "explain_path": f"/v1/pods/{namespace}/{pod}/explanation?window=w-{alert_id}",
    }
    if score is not None:
        minerlens["score"] = score
    return DetectionFinding.model_validate(
        {
            "activity_id": activity_id,
            "activity_name": ACTIVITY[activity_id],
            "type_uid": 200400 + activity_id,
            "type_name": f"Detection Finding: {ACTIVITY[activity_id]}",
            "time": 1_735_787_045_000,
            "severity_id": severity_id,
            "severity": SEVERITY[severity_id],
            "message": f"Suspected cryptominer in pod {namespace}/{pod}",
            "metadata": {
                "product": {"version": "0.1.0"},
                "uid": f"{alert_id}-{activity_id}-{seq}",
                "correlation_uid": alert_id,
            },
            "finding_info": {
                "uid": alert_id,
                "title": "Suspected cryptominer",
                "created_time": 1_735_787_000_000,
                "analytic": {"name": "xgb-window", "version": "1"},
            },
            "resources": [
                {
                    "uid": pod_uid,
                    "name": pod,
                    "namespace": namespace,
                    "labels": [f"{k}={v}" for k, v in (labels or {"app": "web"}).items()],
                }
            ],
            "unmapped": {"minerlens": minerlens},
        }
    )
