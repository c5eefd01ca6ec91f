"""What the responder needs from an OCSF Detection Finding, read once (``unmapped.minerlens`` first)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from minerlens_core.schemas.ocsf import DetectionFinding

from minerlens_responder.audit import ExplanationSummary, PodTarget

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


def _label_map(raw: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def _reason_text(reason: Any) -> str:
    if isinstance(reason, dict):
        return str(reason.get("text") or reason.get("feature") or "").strip()
    return str(reason).strip()


def _score(finding: DetectionFinding, extra: dict[str, Any]) -> float | None:
    raw = extra.get("score")
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    if finding.risk_score is not None:
        return finding.risk_score / 100.0
    return None


def alert_facts(finding: DetectionFinding) -> AlertFacts:
    extra = finding.unmapped.get("minerlens")
    extra = extra if isinstance(extra, dict) else {}
    res = finding.pod
    pod_uid = (res.uid if res else "") or str(extra.get("pod_uid") or "")
    namespace = (res.namespace if res else "") or str(extra.get("namespace") or "")
    pod_name = (res.name if res else "") or str(extra.get("pod") or "")
    raw_reasons = extra.get("reasons")
    reasons = [t for t in (_reason_text(r) for r in raw_reasons) if t] if isinstance(raw_reasons, list) else []
    summary = finding.message.strip()
    extra_reasons = [r for r in reasons[:3] if r not in summary]  # the scorer's message may quote them
    if extra_reasons:
        summary = f"{summary} — {'; '.join(extra_reasons)}" if summary else "; ".join(extra_reasons)
    explain_path = extra.get("explain_path") or finding.finding_info.src_url
    return AlertFacts(
        alert_id=str(extra.get("alert_id") or finding.alert_id),
        finding_uid=finding.metadata.uid,
        activity_id=finding.activity_id,
        severity_id=finding.severity_id,
        severity=finding.severity,
        score=_score(finding, extra),
        pod_uid=pod_uid,
        namespace=namespace,
        pod_name=pod_name,
        labels=(_labels(res.labels) if res and res.labels else _label_map(extra.get("labels"))),
        explanation=ExplanationSummary(
            summary=summary[:MAX_SUMMARY],
            reasons=reasons[:10],
            explain_path=str(explain_path) if explain_path else None,
        ),
    )
