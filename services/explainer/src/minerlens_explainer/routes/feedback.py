"""Operator feedback on alerts: "confirmed miner" / "false positive" (admin), and the list (read)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from minerlens_explainer.http_auth import AdminActor, ReadRole
from minerlens_explainer.naming import PodKey
from minerlens_explainer.operator_models import Feedback, FeedbackList, FeedbackRequest
from minerlens_explainer.operator_store import MAX_FEEDBACK_LISTED
from minerlens_explainer.redis_link import RedisUnavailable
from minerlens_explainer.routes.deps import (
    AUTH_ERRORS,
    NOT_FOUND,
    UNAVAILABLE,
    Namespace,
    PodName,
    RuntimeDep,
    store_down,
)

router = APIRouter(tags=["feedback"], responses=AUTH_ERRORS)


@router.post("/v1/admin/pods/{namespace}/{pod}/feedback", response_model=Feedback, status_code=201,
             summary="judge the pod's alert (or one window): miner or false_positive (admin)",
             responses={404: NOT_FOUND, 503: UNAVAILABLE})  # fmt: skip
async def give_feedback(
    actor: AdminActor, rt: RuntimeDep, namespace: Namespace, pod: PodName, body: FeedbackRequest
) -> Feedback:
    return await rt.actions.add_feedback(PodKey(namespace, pod), body, actor)


@router.get("/v1/feedback", response_model=FeedbackList, summary="operator feedback, newest first",
            responses={503: UNAVAILABLE})  # fmt: skip
async def list_feedback(
    _: ReadRole, rt: RuntimeDep,
    alert_id: Annotated[str | None, Query(pattern=r"^[\x21-\x7e]{1,512}$", description="one alert's")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_FEEDBACK_LISTED)] = 100,
) -> FeedbackList:  # fmt: skip
    try:
        items = await rt.ops.feedback(alert_id, limit)
    except RedisUnavailable as exc:
        raise store_down(exc) from None
    return FeedbackList(feedback=items, count=len(items))
