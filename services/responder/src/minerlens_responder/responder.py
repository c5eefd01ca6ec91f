"""The responder's decision: one alert event in, one audit record out (and, when allowed, actions).

Order of checks, each ending the decision with its own outcome: a rule must match (``no_match``); the
pod must be known (``skipped``); its namespace allowed and the pod not protected (``denied``); the
rate limits must hold (``rate_limited``). Then, by mode: ``dry-run`` plans and calls nothing;
``server-dry-run`` and ``enforce`` first GET the pod (it must still be the alert's pod, by uid) and
run the rule's actions in :data:`~minerlens_responder.policy.ACTION_ORDER`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime

from minerlens_core.schemas.envelope import utcnow
from minerlens_core.schemas.ocsf import ACTIVITY_CLOSE, DetectionFinding

from minerlens_responder.actions import ActionExecutor, PodUnavailableError
from minerlens_responder.alert import AlertFacts, alert_facts
from minerlens_responder.audit import ActionResult, ApiRequest, AuditRecord, DecisionOutcome
from minerlens_responder.kube_api import KubeApi, KubeApiError
from minerlens_responder.policy import Action, Mode, Policy
from minerlens_responder.ratelimit import RateLimiter

_OK = {"done", "already_done", "server_dry_run", "planned", "repeat", "not_applicable"}
_ACTED = {"done", "already_done", "server_dry_run", "planned"}


class Responder:
    def __init__(
        self,
        policy: Policy,
        *,
        mode: Mode | None = None,
        api: KubeApi | None = None,
        cluster: str = "default",
        instance: str = "minerlens-responder",
        own_namespace: str = "",
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.mode: Mode = mode or policy.mode
        if self.mode != "dry-run" and api is None:
            msg = f"mode {self.mode} needs a Kubernetes API client"
            raise ValueError(msg)
        self.executor = ActionExecutor(api, policy, instance=instance, clock=clock) if api else None
        self.limiter = RateLimiter(policy.rate_limits)
        self.cluster = cluster
        self.instance = instance
        self.own_namespace = own_namespace
        self.clock = clock
        self.monotonic = monotonic

    async def handle(self, finding: DetectionFinding) -> AuditRecord:
        facts = alert_facts(finding)
        record = AuditRecord(
            decision_id=str(uuid.uuid4()),
            decided_at=self.clock(),
            cluster=self.cluster,
            responder=self.instance,
            mode=self.mode,
            alert_id=facts.alert_id,
            finding_uid=facts.finding_uid,
            activity_id=facts.activity_id,
            severity_id=facts.severity_id,
            severity=facts.severity,
            score=facts.score,
            pod=facts.target,
            outcome="no_match",
            reason="",
            explanation=facts.explanation,
        )
        rule = self.policy.first_match(
            severity_id=facts.severity_id,
            score=facts.score,
            namespace=facts.namespace,
            labels=facts.labels,
            activity_id=facts.activity_id,
        )
        if rule is None:
            return _end(record, "no_match", f"no rule matches ({len(self.policy.rules)} rules)")
        record.rule = rule.name
        if not (facts.pod_uid and facts.namespace and facts.pod_name):
            return _end(record, "skipped", "the alert does not name the pod (uid, namespace and name are needed)")
        refusal = self.policy.namespace_refusal(facts.namespace, self.own_namespace)
        if refusal is None and facts.labels.get(self.policy.labels.protected) == "true":
            refusal = f"the pod carries {self.policy.labels.protected}=true"
        if refusal is not None:
            return _end(record, "denied", refusal)
        now = self.monotonic()
        # a Close is a new state of the alert: its actions are limited apart from the open alert's
        key = f"{facts.alert_id}#close" if facts.activity_id == ACTIVITY_CLOSE else facts.alert_id
        limited = self.limiter.refusal(key, facts.alert_id, facts.severity_id, now)
        if limited is not None:
            return _end(record, "rate_limited", limited)

        done_before = self.limiter.already(key)
        todo = [a for a in rule.ordered_actions() if a not in done_before]
        record.actions = [
            ActionResult(action=a.value, outcome="repeat", detail="already done or planned for this alert")
            for a in rule.ordered_actions()
            if a in done_before
        ]
        if not todo:
            return _end(record, "skipped", "every action of the rule was already taken for this alert")
        if self.mode == "dry-run":
            record.actions += [
                ActionResult(action=a.value, outcome="planned", target=f"Pod/{facts.namespace}/{facts.pod_name}")
                for a in todo
            ]
            self.limiter.record(key, facts.severity_id, set(todo), now)
            return _end(record, "dry_run", f"rule {rule.name}: dry-run, nothing sent to the cluster")
        return await self._act(record, facts, todo, key, now)

    async def _act(
        self, record: AuditRecord, facts: AlertFacts, todo: list[Action], key: str, now: float
    ) -> AuditRecord:
        assert self.executor is not None
        dry_run = self.mode == "server-dry-run"
        lookup = ActionResult(action="lookup", outcome="done", target=f"Pod/{facts.namespace}/{facts.pod_name}")
        record.actions.insert(0, lookup)
        trail: list[ApiRequest] = lookup.requests
        try:
            pod = await self.executor.load_pod(facts, trail)
        except PodUnavailableError as exc:
            lookup.outcome, lookup.detail = "not_applicable", str(exc)
            return _end(record, "skipped", str(exc))
        except KubeApiError as exc:
            lookup.outcome, lookup.detail = "failed", str(exc)
            return _end(record, "failed", f"cannot read the pod: {exc}")
        except Exception as exc:  # noqa: BLE001 - the API being unreachable is an audited failure
            lookup.outcome, lookup.detail = "failed", f"{type(exc).__name__}: {exc}"
            return _end(record, "failed", f"cannot read the pod: {lookup.detail}")
        live_labels = (pod.get("metadata") or {}).get("labels") or {}
        if live_labels.get(self.policy.labels.protected) == "true":
            return _end(record, "denied", f"the pod carries {self.policy.labels.protected}=true")

        results = [await self.executor.run(a, facts, pod, dry_run=dry_run) for a in todo]
        record.actions += results
        acted = {a for a, r in zip(todo, results, strict=True) if r.outcome in _ACTED}
        self.limiter.record(key, facts.severity_id, acted, now)
        failed = [r for r in results if r.outcome not in _OK]
        if not failed:
            outcome: DecisionOutcome = "server_dry_run" if dry_run else "executed"
            return _end(record, outcome, f"rule {record.rule}: {len(results)} actions ({self.mode})")
        if len(failed) == len(results):
            return _end(record, "failed", f"rule {record.rule}: every action failed")
        names = ", ".join(r.action for r in failed)
        return _end(record, "partial", f"rule {record.rule}: failed or blocked: {names}")


def _end(record: AuditRecord, outcome: DecisionOutcome, reason: str) -> AuditRecord:
    record.outcome = outcome
    record.reason = reason
    return record
