"""The response actions against the Kubernetes API: what each one sends, and how its answer reads.

Each action builds its request bodies here (so they are reviewable in one place and checked request by
request in tests) and turns the API's answer into an :class:`ActionResult`; a failure of one action is
recorded and never stops the others or the audit. ``dry_run`` sends every write with ``dryRun=All``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from minerlens_core.schemas.envelope import utcnow
from minerlens_core.schemas.ocsf import ACTIVITY_CLOSE

from minerlens_responder.alert import AlertFacts
from minerlens_responder.audit import ActionResult, ApiRequest
from minerlens_responder.kube_api import JsonObj, KubeApi, KubeApiError, ScaleKind
from minerlens_responder.policy import Action, Policy

log = logging.getLogger(__name__)

REPORTING_CONTROLLER = "minerlens.io/responder"
EVENT_REASON = "CryptominerSuspected"
EVENT_REASON_CLOSED = "CryptominerAlertClosed"
MANAGED_BY = {"app.kubernetes.io/managed-by": "minerlens-responder"}
MAX_NOTE = 1000  # events.k8s.io/v1 limits note to 1 kB
MAX_ANNOTATION = 1000


def _micro_time(t: datetime) -> str:
    """Kubernetes MicroTime: RFC 3339 with microseconds, UTC."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class PodUnavailableError(Exception):
    """The alert's pod cannot be acted on: gone, or its name now belongs to another pod."""


class ActionExecutor:
    """Runs one action on one pod. Stateless apart from the API client; the Responder orders the calls."""

    def __init__(self, api: KubeApi, policy: Policy, *, instance: str, clock: Callable[[], datetime] = utcnow) -> None:
        self.api = api
        self.policy = policy
        self.instance = instance[:128]
        self.clock = clock

    async def load_pod(self, facts: AlertFacts, trail: list[ApiRequest]) -> JsonObj:
        """GET the pod and check it is still the alert's pod (names are reused; uids are not)."""
        try:
            pod = await self.api.get_pod(facts.namespace, facts.pod_name, trail)
        except KubeApiError as exc:
            if exc.status == 404:
                msg = f"pod {facts.display} no longer exists"
                raise PodUnavailableError(msg) from None
            raise
        uid = (pod.get("metadata") or {}).get("uid")
        if uid != facts.pod_uid:
            msg = f"pod {facts.display} is now another pod (uid {uid}, alert names {facts.pod_uid})"
            raise PodUnavailableError(msg)
        return pod

    async def run(self, action: Action, facts: AlertFacts, pod: JsonObj, *, dry_run: bool) -> ActionResult:
        result = ActionResult(
            action=action.value,
            outcome="server_dry_run" if dry_run else "done",
            target=f"Pod/{facts.namespace}/{facts.pod_name}",
        )
        step = {
            Action.annotate: self._annotate,
            Action.event: self._event,
            Action.isolate: self._isolate,
            Action.scale_to_zero: self._scale_to_zero,
            Action.evict: self._evict,
        }[action]
        try:
            await step(facts, pod, result, dry_run=dry_run)
        except KubeApiError as exc:
            result.outcome = "failed"
            result.detail = str(exc)
        except Exception as exc:  # noqa: BLE001 - one action's failure (network, timeout) must not stop the audit
            result.outcome = "failed"
            result.detail = f"{type(exc).__name__}: {exc}"
        return result

    # ---- bodies -----------------------------------------------------------------------------------

    def annotate_patch(self, facts: AlertFacts) -> JsonObj:
        p = self.policy.labels.annotation_prefix
        annotations = {
            f"{p}alert-id": facts.alert_id,
            f"{p}severity": facts.severity,
            f"{p}flagged-at": _rfc3339(self.clock()),
        }
        if facts.score is not None:
            annotations[f"{p}score"] = f"{facts.score:.3f}"
        if facts.explanation.explain_path:
            annotations[f"{p}explain"] = facts.explanation.explain_path
        if facts.explanation.summary:
            annotations[f"{p}summary"] = facts.explanation.summary[:MAX_ANNOTATION]
        return {"metadata": {"labels": {self.policy.labels.suspect: "true"}, "annotations": annotations}}

    def event_body(self, facts: AlertFacts) -> JsonObj:
        score = "-" if facts.score is None else f"{facts.score:.3f}"
        closed = facts.activity_id == ACTIVITY_CLOSE
        what = "alert closed" if closed else "suspected cryptominer"
        note = f"minerlens alert {facts.alert_id}: {what} (severity {facts.severity}, score {score})."
        if facts.explanation.summary:
            note += f" {facts.explanation.summary}"
        if facts.explanation.explain_path:
            note += f" Why: {facts.explanation.explain_path}"
        return {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"generateName": f"{facts.pod_name[:200]}.minerlens-", "namespace": facts.namespace},
            "eventTime": _micro_time(self.clock()),
            "reportingController": REPORTING_CONTROLLER,
            "reportingInstance": self.instance,
            "action": "Closed" if closed else "Flagged",
            "reason": EVENT_REASON_CLOSED if closed else EVENT_REASON,
            "type": "Normal" if closed else "Warning",
            "regarding": {
                "apiVersion": "v1",
                "kind": "Pod",
                "namespace": facts.namespace,
                "name": facts.pod_name,
                "uid": facts.pod_uid,
            },
            "note": note[:MAX_NOTE],
        }

    def quarantine_policy(self, namespace: str) -> JsonObj:
        iso = self.policy.isolation
        types = ["Ingress", "Egress"] if iso.deny_ingress else ["Egress"]
        spec: JsonObj = {
            "podSelector": {"matchLabels": {self.policy.labels.quarantine: "true"}},
            "policyTypes": types,
            "egress": [],
        }
        if iso.deny_ingress:
            spec["ingress"] = []
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": iso.policy_name, "namespace": namespace, "labels": dict(MANAGED_BY)},
            "spec": spec,
        }

    def quarantine_patch(self, facts: AlertFacts) -> JsonObj:
        p = self.policy.labels.annotation_prefix
        return {
            "metadata": {
                "labels": {self.policy.labels.quarantine: "true"},
                "annotations": {f"{p}quarantined-by": facts.alert_id},
            }
        }

    @staticmethod
    def eviction_body(facts: AlertFacts) -> JsonObj:
        return {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": facts.pod_name, "namespace": facts.namespace},
            "deleteOptions": {"preconditions": {"uid": facts.pod_uid}},
        }

    # ---- steps ------------------------------------------------------------------------------------

    async def _annotate(self, facts: AlertFacts, _pod: JsonObj, result: ActionResult, *, dry_run: bool) -> None:
        await self.api.patch_pod(facts.namespace, facts.pod_name, self.annotate_patch(facts), result.requests,
                                 dry_run=dry_run)  # fmt: skip
        result.detail = f"labelled {self.policy.labels.suspect}=true, annotated with alert {facts.alert_id}"

    async def _event(self, facts: AlertFacts, _pod: JsonObj, result: ActionResult, *, dry_run: bool) -> None:
        body = await self.api.create_event(facts.namespace, self.event_body(facts), result.requests, dry_run=dry_run)
        name = (body.get("metadata") or {}).get("name", "")
        result.detail = f"{body.get('type', 'Warning')} event {body.get('reason', EVENT_REASON)} {name}".strip()

    async def _isolate(self, facts: AlertFacts, _pod: JsonObj, result: ActionResult, *, dry_run: bool) -> None:
        name = self.policy.isolation.policy_name
        try:
            await self.api.create_network_policy(
                facts.namespace, self.quarantine_policy(facts.namespace), result.requests, dry_run=dry_run
            )
            created = f"created NetworkPolicy {name}"
        except KubeApiError as exc:
            if exc.status != 409:
                raise
            created = f"NetworkPolicy {name} already present"
        # the policy exists before the label lands: the pod is never labelled without being isolated
        await self.api.patch_pod(
            facts.namespace, facts.pod_name, self.quarantine_patch(facts), result.requests, dry_run=dry_run
        )
        result.detail = f"{created}; labelled {self.policy.labels.quarantine}=true (all egress denied)"

    async def _scale_to_zero(self, facts: AlertFacts, pod: JsonObj, result: ActionResult, *, dry_run: bool) -> None:
        target = await self._scalable_owner(facts, pod, result)
        if target is None:
            return
        kind, name = target
        result.target = f"{kind}/{facts.namespace}/{name}"
        scale = await self.api.get_scale(kind, facts.namespace, name, result.requests)
        replicas = int((scale.get("spec") or {}).get("replicas") or 0)
        if replicas == 0:
            result.outcome = "already_done"
            result.detail = f"{kind}/{name} already has 0 replicas"
            return
        patch = {"spec": {"replicas": 0}}
        await self.api.patch_scale(kind, facts.namespace, name, patch, result.requests, dry_run=dry_run)
        result.detail = (
            f"{kind}/{name}: {replicas} -> 0 replicas "
            f"(restore: kubectl -n {facts.namespace} scale {kind}/{name} --replicas={replicas})"
        )

    async def _scalable_owner(
        self, facts: AlertFacts, pod: JsonObj, result: ActionResult
    ) -> tuple[ScaleKind, str] | None:
        owner = _controller(pod)
        if owner is None:
            result.outcome = "not_applicable"
            result.detail = "the pod has no controller to scale (bare pod): use evict"
            return None
        kind, name = owner
        if kind == "StatefulSet":
            return "statefulsets", name
        if kind == "ReplicaSet":
            rs = await self.api.get_replica_set(facts.namespace, name, result.requests)
            parent = _controller(rs)
            if parent is None:
                return "replicasets", name
            if parent[0] == "Deployment":
                return "deployments", parent[1]
            kind, name = parent
        result.outcome = "not_applicable"
        result.detail = f"owner {kind}/{name} cannot be scaled to zero by the responder"
        return None

    async def _evict(self, facts: AlertFacts, _pod: JsonObj, result: ActionResult, *, dry_run: bool) -> None:
        body = self.eviction_body(facts)
        try:
            await self.api.evict_pod(facts.namespace, facts.pod_name, body, result.requests, dry_run=dry_run)
        except KubeApiError as exc:
            if exc.status == 429:
                result.outcome = "blocked"
                result.detail = f"eviction refused by a PodDisruptionBudget: {exc.message}"
                return
            if exc.status == 404:
                result.outcome = "already_done"
                result.detail = "the pod is already gone"
                return
            raise
        result.detail = "evicted" if not dry_run else "eviction accepted (dry run)"


def _controller(obj: JsonObj) -> tuple[str, str] | None:
    refs: list[dict[str, Any]] = (obj.get("metadata") or {}).get("ownerReferences") or []
    for ref in refs:
        if ref.get("controller"):
            return str(ref.get("kind", "")), str(ref.get("name", ""))
    return None
