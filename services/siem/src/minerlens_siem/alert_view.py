"""One flat, typed view of an OCSF Detection Finding, the single input of every SIEM mapping.

The finding is canonical; ``unmapped.minerlens`` carries the detector's own details (score, model,
reasons, windows). Both are read here once, so the ECS, CEF and HEC mappings never dig into the OCSF
document themselves and never disagree on where a field comes from. Missing details are tolerated
(the mappings omit those fields); details of the wrong type are refused with a ``ValidationError``,
which the consumer dead-letters as ``invalid_finding``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from minerlens_core.schemas.details import ImageDetails, MinerlensDetails, ProcessDetails, ReasonDetails
from minerlens_core.schemas.ocsf import ACTIVITY_CLOSE, ACTIVITY_CREATE, ACTIVITY_UPDATE, DetectionFinding
from pydantic import BaseModel, ConfigDict

Activity = Literal["create", "update", "close"]
ACTIVITIES: dict[int, Activity] = {ACTIVITY_CREATE: "create", ACTIVITY_UPDATE: "update", ACTIVITY_CLOSE: "close"}


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Ref(_Lenient):
    uid: str | None = None
    name: str | None = None


class _Attack(_Lenient):
    version: str | None = None
    tactic: _Ref | None = None
    technique: _Ref | None = None
    sub_technique: _Ref | None = None


@dataclass(frozen=True)
class Attack:
    """One MITRE ATT&CK reference (tactic and technique ids and names; either may be missing)."""

    tactic_id: str | None
    tactic_name: str | None
    technique_id: str | None
    technique_name: str | None
    version: str | None


@dataclass(frozen=True)
class AlertView:
    alert_id: str
    event_uid: str
    activity: Activity
    type_uid: int
    time_ms: int
    created_ms: int | None
    first_seen_ms: int | None
    last_seen_ms: int | None
    severity_id: int
    severity: str
    title: str
    description: str | None
    message: str
    product_version: str
    ocsf_version: str
    analytic_name: str
    analytic_uid: str | None
    analytic_type: str
    model_name: str
    model_version: str
    namespace: str | None
    pod: str | None
    pod_uid: str | None
    pod_labels: dict[str, str]
    container_id: str | None
    node: str | None
    cluster: str | None
    score: float | None
    threshold: float | None
    windows_over: int | None
    windows_seen: int | None
    window_ids: list[str]
    confidence_score: int | None
    risk_score: float | None
    reasons: list[ReasonDetails]
    explain_url: str | None
    explain_path: str | None
    attacks: list[Attack]
    process: ProcessDetails | None = None
    """the process the alert names (pid, comm, exe), None when the finding has none"""
    image: ImageDetails | None = None
    """the image of the alert's container (name = repository, tag, digest), None when the finding has none"""

    def reasons_summary(self, limit: int = 5) -> str:
        return "; ".join(r.sentence() for r in self.reasons[:limit])


def parse_labels(labels: list[str]) -> dict[str, str]:
    """OCSF resource labels are ``"key=value"`` strings; a label without ``=`` has an empty value."""
    out: dict[str, str] = {}
    for label in labels:
        key, _, value = label.partition("=")
        if key:
            out[key] = value
    return out


def _reasons_from_anomalies(finding: DetectionFinding) -> list[ReasonDetails]:
    """Fallback when ``unmapped.minerlens.reasons`` is absent: the anomalies of ``anomaly_analyses``."""
    reasons = []
    for analysis in finding.anomaly_analyses:
        for anomaly in analysis.anomalies:
            value: float | None = None
            if anomaly.observations:
                try:
                    value = float(anomaly.observations[0].value)
                except ValueError:
                    value = None
            reasons.append(
                ReasonDetails(feature=anomaly.observation_parameter, value=value, text=anomaly.observed_pattern or "")
            )
    return reasons


def _image(details: MinerlensDetails, finding: DetectionFinding) -> ImageDetails | None:
    """``unmapped.minerlens.image``, else the OCSF ``container.image`` (``name``, ``tag``, ``uid`` = digest)."""
    if details.image is not None:
        return details.image
    container = finding.container_object()
    image = container.image if container is not None else None
    if image is None or not image.name:
        return None
    return ImageDetails(name=image.name, tag=image.tag or "", digest=image.uid or "")


def alert_view(finding: DetectionFinding) -> AlertView:
    """Flatten ``finding``; raises ``pydantic.ValidationError`` when ``unmapped.minerlens`` is mistyped."""
    details = MinerlensDetails.of(finding)
    info = finding.finding_info
    analytic = info.analytic
    pod = finding.pod
    attacks = []
    for raw in info.attacks:
        a = _Attack.model_validate(raw)
        technique = a.sub_technique if a.sub_technique and a.sub_technique.uid else a.technique
        attacks.append(
            Attack(
                tactic_id=a.tactic.uid if a.tactic else None,
                tactic_name=a.tactic.name if a.tactic else None,
                technique_id=technique.uid if technique else None,
                technique_name=technique.name if technique else None,
                version=a.version,
            )
        )
    risk: float | None = float(finding.risk_score) if finding.risk_score is not None else None
    if risk is None and details.score is not None:
        risk = round(min(max(details.score, 0.0), 1.0) * 100.0, 2)
    return AlertView(
        alert_id=info.uid,
        event_uid=finding.metadata.uid,
        activity=ACTIVITIES[finding.activity_id],
        type_uid=finding.type_uid,
        time_ms=finding.time,
        created_ms=finding.metadata.logged_time,
        first_seen_ms=info.first_seen_time,
        last_seen_ms=info.last_seen_time,
        severity_id=finding.severity_id,
        severity=finding.severity,
        title=info.title,
        description=info.desc,
        message=finding.message,
        product_version=finding.metadata.product.version,
        ocsf_version=finding.metadata.version,
        analytic_name=analytic.name,
        analytic_uid=analytic.uid,
        analytic_type=analytic.type,
        model_name=details.model.name if details.model else analytic.name,
        model_version=details.model.version if details.model else analytic.version,
        namespace=(pod.namespace if pod and pod.namespace else None) or details.namespace,
        pod=(pod.name if pod and pod.name else None) or details.pod,
        pod_uid=(pod.uid if pod else None) or details.pod_uid,
        pod_labels=parse_labels(pod.labels) if pod else {},
        container_id=details.container_id or None,
        node=(finding.device.hostname if finding.device else None) or details.node,
        cluster=details.cluster,
        score=details.score,
        threshold=details.threshold,
        windows_over=details.windows_over,
        windows_seen=details.windows_seen,
        window_ids=details.window_ids,
        confidence_score=finding.confidence_score,
        risk_score=risk,
        reasons=details.reasons or _reasons_from_anomalies(finding),
        explain_url=info.src_url,
        explain_path=details.explain_path,
        attacks=attacks,
        process=details.process,
        image=_image(details, finding),
    )
