"""The audit record: one per alert event the responder saw, whatever it decided (even "nothing").

Written to :data:`AUDIT_TOPIC` (keyed by pod uid) and logged. It says what was decided, why, in which
mode, which requests were sent for each action and how each ended, with the alert id and the
explanation summary the alert carried, so an operator can answer "why was my pod evicted?" from the
audit alone.
"""

from __future__ import annotations

from typing import Literal

from minerlens_core import topics
from minerlens_core.schemas.envelope import SCHEMA_VERSION, utcnow
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

AUDIT_TOPIC = topics.AUDIT
"""Response decisions, keyed by pod uid. (To be listed in ``minerlens_core.topics`` by the integrator.)"""

DecisionOutcome = Literal[
    "no_match",  # no rule fits the alert
    "denied",  # a rule fits but the namespace or pod is protected / not allowed
    "rate_limited",  # a rule fits but a rate limit holds it back
    "skipped",  # nothing to act on (pod unknown, gone, or replaced by another pod of the same name)
    "dry_run",  # actions planned, nothing sent (mode dry-run)
    "server_dry_run",  # every write sent with dryRun=All and accepted
    "executed",  # every action done (or already done)
    "partial",  # some actions done, some failed
    "failed",  # no action could be done
]

ActionOutcome = Literal[
    "planned",  # dry-run: would be done
    "server_dry_run",  # accepted by the API server with dryRun=All
    "done",
    "already_done",  # the target already is as the action wants (e.g. replicas already 0)
    "repeat",  # already done or planned for this alert: not repeated
    "not_applicable",  # the action cannot apply to this pod (e.g. no scalable owner)
    "blocked",  # refused by the cluster's own safeguards (PodDisruptionBudget)
    "failed",
]


class ApiRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str
    path: str
    status: int | None = Field(default=None, description="HTTP status, None when nothing was sent")


class ActionResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: str
    outcome: ActionOutcome
    target: str = Field(default="", description="kind/namespace/name acted on")
    detail: str = ""
    requests: list[ApiRequest] = Field(default_factory=list)


class PodTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uid: str
    namespace: str = ""
    name: str = ""


class ExplanationSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    summary: str = Field(default="", description="the alert's message and top reasons in one line")
    reasons: list[str] = Field(default_factory=list)
    explain_path: str | None = Field(default=None, description="where the explainer answers 'why'")


class AuditRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["response_decision"] = "response_decision"
    schema_version: Literal[1] = SCHEMA_VERSION
    decision_id: str
    decided_at: AwareDatetime = Field(default_factory=utcnow)
    cluster: str
    responder: str = Field(description="instance that decided (pod name)")
    mode: Literal["dry-run", "server-dry-run", "enforce"]
    alert_id: str
    finding_uid: str
    activity_id: int
    severity_id: int
    severity: str
    score: float | None
    pod: PodTarget
    rule: str | None = None
    outcome: DecisionOutcome
    reason: str = Field(description="why this outcome, in words")
    actions: list[ActionResult] = Field(default_factory=list)
    explanation: ExplanationSummary = Field(default_factory=ExplanationSummary)

    @property
    def key(self) -> bytes:
        return self.pod.uid.encode()

    def log_line(self) -> str:
        acts = ", ".join(f"{a.action}={a.outcome}" for a in self.actions) or "-"
        who = f"{self.pod.namespace}/{self.pod.name}" if self.pod.name else f"pod:{self.pod.uid}"
        return (
            f"alert {self.alert_id} {who} ({self.severity}, score {_fmt(self.score)}): {self.outcome} "
            f"[mode {self.mode}, rule {self.rule or '-'}] actions: {acts}; {self.reason}; "
            f"why: {self.explanation.summary or '-'}"
        )


def _fmt(score: float | None) -> str:
    return "-" if score is None else f"{score:.3f}"


def decode_audit(data: bytes | str) -> AuditRecord:
    return AuditRecord.model_validate_json(data)
