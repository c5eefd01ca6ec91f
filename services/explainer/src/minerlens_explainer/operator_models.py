"""What operators do through the API and the console: who acted, feedback on an alert, the audit record.

The suppression rule itself (model and matcher) is core's (``minerlens_core.suppressions``): the scorer
evaluates the same rules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from minerlens_core.schemas.bounds import NoControl
from minerlens_core.schemas.envelope import utcnow
from minerlens_core.suppressions import RuleSpec, SuppressionRule
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from minerlens_explainer.naming import WINDOW_ID

Label = Literal["miner", "false_positive"]
"""``miner``: the operator confirms a cryptominer; ``false_positive``: the alert was wrong"""
Why = Annotated[str, Field(min_length=1, max_length=1000), NoControl]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._@-]*$")]
Via = Literal["console", "api"]


class Actor(BaseModel):
    """Who acted: the name given at console login (or ``api``), the role, and a fingerprint of the token."""

    model_config = ConfigDict(frozen=True)

    name: str
    role: str
    token_id: str = Field(description="first 12 hex digits of the token's sha256 (never the token)")
    via: Via


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    label: Label
    reason: Why
    window_id: Annotated[str | None, Field(pattern=WINDOW_ID, max_length=512)] = Field(
        default=None, description="a window of the pod; default: the window that opened its alert"
    )


class Feedback(BaseModel):
    """One operator judgement of an alert (or one window of a pod), kept for retraining."""

    id: str
    label: Label
    reason: str
    namespace: str
    pod: str
    pod_uid: str = ""
    alert_id: str | None = None
    window_id: str | None = None
    window_ids: list[str] = Field(default_factory=list, description="the alert's windows over the threshold")
    model: str | None = Field(default=None, description="name@version of the model that raised the alert")
    score: float | None = None
    by: Actor
    at: AwareDatetime = Field(default_factory=utcnow)

    @property
    def judged_window_ids(self) -> list[str]:
        """The windows this judgement labels: the one that opened the alert, then its windows over the threshold."""
        return list(dict.fromkeys([*([self.window_id] if self.window_id else []), *self.window_ids]))


class FeedbackList(BaseModel):
    feedback: list[Feedback]
    count: int


class SuppressionRequest(RuleSpec):
    """A new rule: conditions, reason, owner, expiry (``id`` optional: a readable one is made)."""

    id: Annotated[str | None, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")] = None


class SuppressionList(BaseModel):
    suppressions: list[SuppressionRule]
    count: int


class OperatorAudit(BaseModel):
    """An operator's action, on the audit topic next to the responder's decisions (``kind`` tells them apart)."""

    kind: Literal["operator_action"] = "operator_action"
    action: Literal["suppression.create", "suppression.delete", "feedback.create"]
    at: datetime = Field(default_factory=utcnow)
    actor: Actor
    target: str = Field(description="the rule id, or namespace/pod of the feedback")
    detail: dict[str, object] = Field(default_factory=dict)
