"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from minerlens_explainer.api_models import Health, IngestState, Readiness
from minerlens_explainer.routes.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get(
    "/healthz", response_model=Health, summary="liveness (no auth)",
    responses={503: {"model": Health, "description": "the ingestion died or stopped with messages waiting"}},
)  # fmt: skip
async def healthz(rt: RuntimeDep) -> JSONResponse:
    state = rt.health()
    ok = bool(state.get("ok"))
    ingest = None if rt.ingest_progress is None else {k: v for k, v in state.items() if k != "ok"}
    body = Health(status="ok" if ok else "failing", reason=None if ok else str(state.get("reason")), ingest=ingest)
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=200 if ok else 503)


@router.get(
    "/readyz", response_model=Readiness, summary="readiness (no auth)",
    responses={503: {"model": Readiness, "description": "no model loaded"}},
)  # fmt: skip
async def readyz(rt: RuntimeDep) -> JSONResponse:
    redis_up = await rt.link.ping()
    st = rt.ingest_status
    body = Readiness(
        ready=bool(rt.registry.models), degraded=not redis_up, redis="up" if redis_up else "down",
        redis_error="" if redis_up else rt.link.last_error, models=len(rt.registry.models),
        ingest=IngestState(enabled=st.enabled, state=st.state, last_error=st.last_error, counts=st.counts),
    )  # fmt: skip
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if body.ready else 503)


async def metrics(rt: RuntimeDep) -> Response:
    """Prometheus metrics (mounted by ``app.create_app``: with or without auth, by setting)."""
    return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)
