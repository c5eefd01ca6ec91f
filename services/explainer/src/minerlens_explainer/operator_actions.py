"""The operator's actions, shared by the REST API and the console: create/delete a suppression rule, give
feedback on an alert. Each is stored in Redis, published (rules, for the scorer) and audited on the audit
topic; when Kafka does not take it, the stored change is undone and the caller gets a 503, so the console,
the scorer and the audit never disagree. Errors are ``ApiError`` (the console renders them as pages)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from minerlens_core.suppressions import RuleSpec, SuppressionRule, rule_id_hint
from pydantic import ValidationError

from minerlens_explainer.http_errors import ApiError
from minerlens_explainer.naming import PodKey
from minerlens_explainer.operator_models import Actor, Feedback, FeedbackRequest, OperatorAudit, SuppressionRequest
from minerlens_explainer.operator_store import MAX_PINNED_WINDOWS, OperatorStore, TooManyRules
from minerlens_explainer.publishing import Publisher, PublishFailed
from minerlens_explainer.redis_link import RedisUnavailable
from minerlens_explainer.store import PodStore

MAX_SUPPRESSION_DAYS = 90


def _unavailable(exc: Exception) -> ApiError:
    return ApiError(503, f"not saved: {exc}", headers={"Retry-After": "2"})


class OperatorActions:
    def __init__(self, pods: PodStore, ops: OperatorStore, publisher: Publisher) -> None:
        self.pods = pods
        self.ops = ops
        self.publisher = publisher

    async def create_suppression(self, req: SuppressionRequest, actor: Actor) -> SuppressionRule:
        now = datetime.now(UTC)
        if req.expires_at <= now:
            raise ApiError(422, "expires_at is in the past")
        if req.expires_at > now + timedelta(days=MAX_SUPPRESSION_DAYS):
            raise ApiError(422, f"a suppression expires within {MAX_SUPPRESSION_DAYS} days (renew it then)")
        rule_id = req.id or f"{rule_id_hint(req)}-{secrets.token_hex(3)}"
        try:
            rule = SuppressionRule(**RuleSpec.model_validate(req.model_dump(exclude={"id"})).model_dump(), id=rule_id,
                                   created_at=now, created_by=f"{actor.name} ({actor.token_id})")  # fmt: skip
        except ValidationError as exc:
            raise ApiError(422, f"invalid suppression: {exc.errors()[0]['msg']}") from None
        try:
            if not await self.ops.add_suppression(rule):
                raise ApiError(409, f"a suppression {rule_id} exists already")
        except TooManyRules as exc:
            raise ApiError(409, str(exc)) from None
        except RedisUnavailable as exc:
            raise _unavailable(exc) from None
        try:
            await self.publisher.rule(rule.id, rule)
            await self.publisher.audit(OperatorAudit(
                action="suppression.create", actor=actor, target=rule.id,
                detail={"rule": rule.model_dump(mode="json"), "matches": rule.describe()},
            ))  # fmt: skip
        except PublishFailed as exc:
            await self._undo_rule(rule)
            raise _unavailable(exc) from None
        return rule

    async def _undo_rule(self, rule: SuppressionRule) -> None:
        try:
            await self.ops.delete_suppression(rule.id)
            await self.publisher.rule(rule.id, None)
        except (RedisUnavailable, PublishFailed):  # the rule stays; it expires by itself
            pass

    async def delete_suppression(self, rule_id: str, actor: Actor) -> SuppressionRule:
        try:
            rule = await self.ops.suppression(rule_id)
            if rule is None:
                raise ApiError(404, f"no suppression {rule_id}")
            await self.publisher.rule(rule_id, None)  # the scorer first: a deleted rule must not keep silencing
            await self.ops.delete_suppression(rule_id)
        except RedisUnavailable as exc:
            raise _unavailable(exc) from None
        except PublishFailed as exc:
            raise _unavailable(exc) from None
        try:
            await self.publisher.audit(OperatorAudit(action="suppression.delete", actor=actor, target=rule_id,
                                                     detail={"rule": rule.model_dump(mode="json")}))  # fmt: skip
        except PublishFailed as exc:
            raise ApiError(503, f"the suppression was deleted but its audit record was not written: {exc}") from None
        return rule

    async def add_feedback(self, pod: PodKey, req: FeedbackRequest, actor: Actor) -> Feedback:
        try:
            rec = await self.pods.pod(pod)
            alert = rec.alert if rec is not None else None
            if req.window_id is None and alert is None:
                raise ApiError(404, f"pod {pod} has no alert (name a window_id to label one window)")
            known = req.window_id is None or (alert is not None and req.window_id in alert.window_ids)
            if not known and await self.pods.window(pod, req.window_id or "") is None:
                raise ApiError(404, f"window {req.window_id} of pod {pod} is not stored")
        except RedisUnavailable as exc:
            raise _unavailable(exc) from None
        model = alert.model if alert is not None else None
        fb = Feedback(
            id=secrets.token_hex(8), label=req.label, reason=req.reason, namespace=pod.namespace, pod=pod.name,
            pod_uid=alert.pod_uid if alert else "", alert_id=alert.alert_id if alert else None,
            window_id=req.window_id or (alert.trigger_window_id if alert else None),
            window_ids=list(alert.window_ids) if alert else [], score=alert.score if alert else None,
            model=f"{model.name}@{model.version}" if model else None, by=actor,
        )  # fmt: skip
        try:
            judged = fb.judged_window_ids
            pinned = {}
            for wid in judged[:MAX_PINNED_WINDOWS]:
                window = await self.pods.window(pod, wid)
                if window is not None:
                    pinned[wid] = window.model_dump_json()
            await self.ops.add_feedback(fb, pinned)
        except RedisUnavailable as exc:
            raise _unavailable(exc) from None
        try:
            await self.publisher.audit(OperatorAudit(action="feedback.create", actor=actor, target=f"{pod}",
                                                     detail=fb.model_dump(mode="json", exclude={"by"})))  # fmt: skip
        except PublishFailed as exc:
            await self.ops.remove_feedback(fb)
            raise _unavailable(exc) from None
        return fb
