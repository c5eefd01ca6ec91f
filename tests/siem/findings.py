"""Realistic OCSF Detection Findings as the scorer emits them (field conventions of docs/contract.md)."""

from __future__ import annotations

from typing import Any

from minerlens_core.schemas.ocsf import (
    SEVERITY,
    Analytic,
    Anomaly,
    AnomalyAnalysis,
    DetectionFinding,
    Device,
    FindingInfo,
    Metadata,
    Observation,
    Product,
    Resource,
)

ALERT_ID = "al-7f3c9a2e"
POD_UID = "5b0c1f0e-8f7e-4c1e-9a0b-2d6f1e3c4a5b"
CONTAINER_ID = "3f4e" * 16
T0_MS = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z
ACTIVITY_NAMES = {1: "Create", 2: "Update", 3: "Close"}


def reasons() -> list[dict[str, Any]]:
    return [
        {
            "feature": "rate.sched_yield",
            "value": 1843.5,
            "baseline": 12.0,
            "contribution": 0.41,
            "text": "sched_yield at 1844/s vs 12/s for benign pods",
        },
        {
            "feature": "share.futex",
            "value": 0.62,
            "baseline": 0.18,
            "contribution": 0.22,
            "text": "futex is 62% of syscalls (benign 18%)",
        },
        {"feature": "entropy.ngram2", "value": 1.1, "baseline": 3.4, "contribution": 0.09, "text": ""},
    ]


def make_finding(
    *,
    activity_id: int = 1,
    severity_id: int = 4,
    namespace: str = "shop",
    pod: str = "checkout-7d9f8b6c5-x2k4q",
    node: str = "node-a",
    cluster: str = "prod-eu",
    message: str | None = None,
    title: str | None = None,
    labels: list[str] | None = None,
    reason_list: list[dict[str, Any]] | None = None,
    unmapped: dict[str, Any] | None = None,
    version: str = "0.1.0",
) -> DetectionFinding:
    """One finding of the alert ALERT_ID; ``activity_id`` 1 Create, 2 Update, 3 Close."""
    rs = reasons() if reason_list is None else reason_list
    window_ids = [f"{POD_UID}/{CONTAINER_ID}/c4096/{i}" for i in range(3, 8)]
    details = {
        "alert_id": ALERT_ID,
        "pod_uid": POD_UID,
        "namespace": namespace,
        "pod": pod,
        "container_id": CONTAINER_ID,
        "node": node,
        "cluster": cluster,
        "window_ids": window_ids,
        "score": 0.973,
        "threshold": 0.5,
        "windows_over": 4,
        "windows_seen": 5,
        "model": {"name": "xgb-syscalls", "version": "2026.01.3"},
        "reasons": rs,
        "explain_path": f"/v1/pods/{namespace}/{pod}/explanation?window={window_ids[-1]}",
    }
    return DetectionFinding(
        activity_id=activity_id,
        activity_name=ACTIVITY_NAMES[activity_id],
        type_uid=2004 * 100 + activity_id,
        type_name=f"Detection Finding: {ACTIVITY_NAMES[activity_id]}",
        time=T0_MS + 60_000 * (activity_id - 1),
        severity_id=severity_id,
        severity=SEVERITY[severity_id],
        status_id={1: 1, 2: 2, 3: 4}[activity_id],
        status={1: "New", 2: "In Progress", 3: "Resolved"}[activity_id],
        message=message or f"Cryptominer suspected in pod {namespace}/{pod}: 4 of the last 5 windows over 0.50",
        metadata=Metadata(
            product=Product(version=version),
            uid=f"{ALERT_ID}:{activity_id}:1",
            correlation_uid=ALERT_ID,
            logged_time=T0_MS + 60_000 * (activity_id - 1) + 5,
        ),
        finding_info=FindingInfo(
            uid=ALERT_ID,
            title=title or f"Cryptominer suspected in {namespace}/{pod}",
            desc="Syscall pattern of a CPU miner (yield-heavy hashing threads)",
            types=["Resource Hijacking"],
            created_time=T0_MS,
            first_seen_time=T0_MS - 50_000,
            last_seen_time=T0_MS + 60_000 * (activity_id - 1),
            src_url=f"https://minerlens.example/v1/pods/{namespace}/{pod}/explanation",
            analytic=Analytic(name="xgb-syscalls", uid="xgb-syscalls", version="2026.01.3", algorithm="xgboost"),
        ),
        confidence_id=3,
        confidence_score=97,
        resources=[
            Resource(
                uid=POD_UID,
                name=pod,
                namespace=namespace,
                labels=labels if labels is not None else ["app=checkout", "app.kubernetes.io/part-of=shop"],
            )
        ],
        anomaly_analyses=[
            AnomalyAnalysis(
                anomalies=[
                    Anomaly(
                        observation_parameter=r["feature"],
                        observations=[Observation(value=str(r["value"]))],
                        observed_pattern=r["text"] or None,
                    )
                    for r in rs
                ]
            )
        ],
        device=Device(hostname=node),
        unmapped={"minerlens": details} if unmapped is None else unmapped,
    )


def finding_json(finding: DetectionFinding) -> bytes:
    return finding.model_dump_json(exclude_none=True).encode()
