"""The response policy: which alerts lead to which actions, where actions may happen, how often.

A YAML file validated by these models (unknown keys are errors, so a typo cannot silently disable a
safeguard). Rules are tried in order; the first whose ``match`` fits the alert decides its actions.
Namespaces in :data:`PROTECTED_NAMESPACES` (and the responder's own) are never acted on, whatever the
file says. See docs/response.md.
"""

from __future__ import annotations

import fnmatch
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from minerlens_core.errors import ConfigurationError
from minerlens_core.schemas.ocsf import SEVERITY
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

PROTECTED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")
"""Never acted on, whatever the policy says (the responder's own namespace is added at run time)."""

_SEVERITY_IDS = {name.lower(): sid for sid, name in SEVERITY.items()}

Mode = Literal["dry-run", "server-dry-run", "enforce"]
"""``dry-run``: decide and audit, call nothing. ``server-dry-run``: send every write with ``dryRun=All``
(the API server runs admission and RBAC, persists nothing). ``enforce``: act."""


class Action(StrEnum):
    """Response actions, in the order they are executed when a rule names several."""

    annotate = "annotate"
    """Label the pod ``suspect`` and annotate it with the alert id, score, severity and explanation."""
    event = "event"
    """Emit a Kubernetes Event (Warning) about the pod: visible in ``kubectl describe pod``."""
    isolate = "isolate"
    """Deny all egress: a quarantine NetworkPolicy in the namespace + the quarantine label on the pod."""
    scale_to_zero = "scale_to_zero"
    """Scale the pod's owner (Deployment, StatefulSet, bare ReplicaSet) to zero replicas."""
    evict = "evict"
    """Evict the pod through the Eviction API (PodDisruptionBudgets are honoured)."""


ACTION_ORDER = tuple(Action)


def _severity_id(value: Any) -> Any:
    if isinstance(value, str) and not value.isdigit():
        sid = _SEVERITY_IDS.get(value.strip().lower())
        if sid is None:
            msg = f"unknown severity {value!r}; one of {', '.join(SEVERITY.values())} or 0-6"
            raise ValueError(msg)
        return sid
    return value


SeverityId = Annotated[int, BeforeValidator(_severity_id), Field(ge=0, le=6)]

_ACTIVITIES = {"create": 1, "update": 2, "close": 3}


def _activity_id(value: Any) -> Any:
    if isinstance(value, str):
        aid = _ACTIVITIES.get(value.strip().lower())
        if aid is None:
            msg = f"unknown activity {value!r}; one of create, update, close"
            raise ValueError(msg)
        return aid
    return value


ActivityId = Annotated[Literal[1, 2, 3], BeforeValidator(_activity_id)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    """What an alert must be for a rule to apply. Every given condition must hold."""

    min_severity: SeverityId = Field(default=0, description="OCSF severity name or id, e.g. High (4)")
    min_score: float = Field(default=0.0, ge=0.0, le=1.0, description="the scorer's score, 0..1")
    namespaces: tuple[str, ...] = Field(default=("*",), description="glob patterns the pod's namespace must match")
    pod_labels: dict[str, str] = Field(default_factory=dict, description="labels the pod must carry (equality)")
    activities: tuple[ActivityId, ...] = Field(default=(1, 2), description="create, update, close")


class Rule(_Strict):
    name: str = Field(min_length=1, max_length=63)
    match: Match = Field(default_factory=Match)
    actions: tuple[Action, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_actions(self) -> Self:
        if len(set(self.actions)) != len(self.actions):
            msg = f"rule {self.name!r} names an action twice"
            raise ValueError(msg)
        return self

    def ordered_actions(self) -> tuple[Action, ...]:
        return tuple(a for a in ACTION_ORDER if a in self.actions)


class Namespaces(_Strict):
    """A namespace is acted on when it matches ``allow`` and does not match ``deny`` (glob patterns)."""

    allow: tuple[str, ...] = ("*",)
    deny: tuple[str, ...] = ()


class RateLimits(_Strict):
    global_per_minute: int = Field(default=10, ge=1, description="alerts acted on per minute, cluster-wide")
    per_alert_cooldown_s: float = Field(
        default=600.0, ge=0, description="after acting on an alert, its updates wait this long unless it escalates"
    )


class Labels(_Strict):
    """The label keys the responder writes (prefix them with a domain you own)."""

    suspect: str = "minerlens.io/suspect"
    quarantine: str = "minerlens.io/quarantine"
    protected: str = Field(default="minerlens.io/protected", description="a pod with <key>=true is never acted on")
    annotation_prefix: str = "minerlens.io/"


class Isolation(_Strict):
    policy_name: str = Field(default="minerlens-quarantine", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    deny_ingress: bool = Field(default=False, description="also deny all ingress to quarantined pods")


class Policy(_Strict):
    mode: Mode = "dry-run"
    namespaces: Namespaces = Field(default_factory=Namespaces)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    labels: Labels = Field(default_factory=Labels)
    isolation: Isolation = Field(default_factory=Isolation)
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def _unique_rule_names(self) -> Self:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            msg = f"duplicate rule names: {', '.join(dupes)}"
            raise ValueError(msg)
        return self

    def namespace_refusal(self, namespace: str, own_namespace: str = "") -> str | None:
        """Why ``namespace`` must not be acted on, or None when it may be."""
        if not namespace:
            return "the pod's namespace is unknown"
        if namespace in PROTECTED_NAMESPACES or (own_namespace and namespace == own_namespace):
            return f"namespace {namespace} is protected (never acted on)"
        if any(fnmatch.fnmatchcase(namespace, p) for p in self.namespaces.deny):
            return f"namespace {namespace} is on the deny list"
        if not any(fnmatch.fnmatchcase(namespace, p) for p in self.namespaces.allow):
            return f"namespace {namespace} is not on the allow list"
        return None

    def first_match(
        self, *, severity_id: int, score: float | None, namespace: str, labels: dict[str, str], activity_id: int
    ) -> Rule | None:
        for rule in self.rules:
            m = rule.match
            if activity_id not in m.activities or severity_id < m.min_severity:
                continue
            if m.min_score > 0 and (score is None or score < m.min_score):
                continue
            if not any(fnmatch.fnmatchcase(namespace, p) for p in m.namespaces):
                continue
            if any(labels.get(k) != v for k, v in m.pod_labels.items()):
                continue
            return rule
        return None


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        msg = f"{source}: not valid YAML: {exc}"
        raise ConfigurationError(msg) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        msg = f"{source}: the policy must be a mapping, got {type(data).__name__}"
        raise ConfigurationError(msg)
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors())
        msg = f"{source}: invalid policy: {problems}"
        raise ConfigurationError(msg) from exc


def load_policy(path: Path) -> Policy:
    try:
        text = path.read_text()
    except OSError as exc:
        msg = f"cannot read the policy file {path}: {exc.strerror or exc}"
        raise ConfigurationError(msg) from exc
    return parse_policy(text, str(path))
