"""What the responder needs from an OCSF Detection Finding, read once (``unmapped.minerlens`` first)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from minerlens_core.schemas.details import MinerlensDetails
from minerlens_core.schemas.ocsf import DetectionFinding
from pydantic import ValidationError

from minerlens_responder.audit import ExplanationSummary, PodTarget

log = logging.getLogger(__name__)
MAX_SUMMARY = 900


@dataclass(frozen=True, slots=True)
class AlertFacts:
    alert_id: str
    finding_uid: str
    activity_id: int
    severity_id: int
    severity: str
    score: float | None
    pod_uid: str
    namespace: str
    pod_name: str
    labels: dict[str, str] = field(default_factory=dict)
    explanation: ExplanationSummary = field(default_factory=ExplanationSummary)

    @property
    def target(self) -> PodTarget:
        return PodTarget(uid=self.pod_uid, namespace=self.namespace, name=self.pod_name)

    @property
    def display(self) -> str:
        return f"{self.namespace}/{self.pod_name}" if self.namespace and self.pod_name else f"pod:{self.pod_uid}"


def _labels(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if sep and key:
            out[key] = value
    return out


def _details(finding: DetectionFinding) -> MinerlensDetails:
    """The finding's ``unmapped.minerlens``; mistyped details are ignored (the OCSF fields still name the pod)."""
    try:
        return MinerlensDetails.of(finding)
    except ValidationError as exc:
        log.warning("finding %s: unmapped.minerlens ignored (%s)", finding.metadata.uid, str(exc)[:200])
        return MinerlensDetails()


def _score(finding: DetectionFinding, details: MinerlensDetails) -> float | None:
    if details.score is not None:
        return details.score
    if finding.risk_score is not None:
        return finding.risk_score / 100.0
    return None


def alert_facts(finding: DetectionFinding) -> AlertFacts:
    extra = _details(finding)
    res = finding.pod
    pod_uid = (res.uid if res else "") or (extra.pod_uid or "")
    namespace = (res.namespace if res else "") or (extra.namespace or "")
    pod_name = (res.name if res else "") or (extra.pod or "")
    reasons = [t for t in (r.sentence().strip() for r in extra.reasons) if t]
    summary = finding.message.strip()
    extra_reasons = [r for r in reasons[:3] if r not in summary]  # the scorer's message may quote them
    if extra_reasons:
        summary = f"{summary} — {'; '.join(extra_reasons)}" if summary else "; ".join(extra_reasons)
    explain_path = extra.explain_path or finding.finding_info.src_url
    return AlertFacts(
        alert_id=extra.alert_id or finding.alert_id,
        finding_uid=finding.metadata.uid,
        activity_id=finding.activity_id,
        severity_id=finding.severity_id,
        severity=finding.severity,
        score=_score(finding, extra),
        pod_uid=pod_uid,
        namespace=namespace,
        pod_name=pod_name,
        labels=(_labels(res.labels) if res and res.labels else dict(extra.labels)),
        explanation=ExplanationSummary(
            summary=summary[:MAX_SUMMARY],
            reasons=reasons[:10],
            explain_path=str(explain_path) if explain_path else None,
        ),
    )
