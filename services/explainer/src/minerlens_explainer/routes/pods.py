"""Pods: the latest verdict of every recent pod, and one pod's history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from minerlens_explainer.api_models import PodDetail, PodList, PodSummary, WindowInfo
from minerlens_explainer.http_auth import ReadRole
from minerlens_explainer.http_errors import ApiError
from minerlens_explainer.naming import DNS1123_LABEL, LABEL_MAX, PodKey
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
from minerlens_explainer.runtime import Runtime
from minerlens_explainer.store import PodRecord

router = APIRouter(tags=["pods"], responses=AUTH_ERRORS)


def _summary(rec: PodRecord) -> PodSummary:
    return PodSummary(
        namespace=rec.namespace, pod=rec.pod, pod_uid=rec.pod_uid, node=rec.node, last_seen=rec.last_seen,
        alerting=rec.alerting, alert=rec.alert, latest=rec.latest,
    )  # fmt: skip


async def pod_record(rt: Runtime, pod: PodKey) -> PodRecord:
    """The pod's record, or 404 (it was not seen within the window TTL)."""
    rec = await rt.store.pod(pod)
    if rec is None:
        raise ApiError(404, f"no pod {pod} seen in the last {rt.settings.window_ttl_s} s")
    return rec


@router.get("/v1/pods", response_model=PodList, summary="latest verdict of every recent pod",
            responses={503: UNAVAILABLE})  # fmt: skip
async def list_pods(
    _: ReadRole,
    rt: RuntimeDep,
    namespace: Annotated[str | None, Query(pattern=DNS1123_LABEL, max_length=LABEL_MAX)] = None,
    alerting: Annotated[bool | None, Query(description="only pods with (true) / without (false) an open alert")]
    = None,
) -> PodList:  # fmt: skip
    try:
        records, truncated = await rt.store.pods(namespace)
    except RedisUnavailable as exc:
        raise store_down(exc) from None
    pods = [_summary(r) for r in records if alerting is None or r.alerting == alerting]
    return PodList(pods=pods, count=len(pods), truncated=truncated)


@router.get("/v1/pods/{namespace}/{pod}", response_model=PodDetail,
            summary="verdict history and stored windows of a pod",
            responses={404: NOT_FOUND, 503: UNAVAILABLE})  # fmt: skip
async def pod_detail(
    _: ReadRole, rt: RuntimeDep, namespace: Namespace, pod: PodName,
    limit: Annotated[int, Query(ge=1, le=1000, description="verdicts and windows to return")] = 100,
) -> PodDetail:  # fmt: skip
    key = PodKey(namespace, pod)
    try:
        rec = await pod_record(rt, key)
        verdicts = await rt.store.verdicts(key, limit)
        windows = await rt.store.windows(key, limit)
    except RedisUnavailable as exc:
        raise store_down(exc) from None
    infos = [
        WindowInfo(window_id=w.window_id, policy=w.policy, index=w.index, start_ns=w.start_ns, end_ns=w.end_ns,
                   count=w.count, lost_events=w.lost_events, complete=w.complete)
        for w in windows
    ]  # fmt: skip
    return PodDetail(
        namespace=rec.namespace, pod=rec.pod, pod_uid=rec.pod_uid, node=rec.node, last_seen=rec.last_seen,
        alerting=rec.alerting, alert=rec.alert, verdicts=verdicts, windows=infos,
    )  # fmt: skip
