"""The REST API (FastAPI), assembled: the runtime, the middleware, the error handlers and the routers of
``routes`` (one module per resource). Nothing here handles a request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import Response
from minerlens_core.settings import KafkaSettings

from minerlens_explainer import __version__
from minerlens_explainer.api_models import ErrorBody
from minerlens_explainer.backend import ExplainerBackend
from minerlens_explainer.http_auth import read_role
from minerlens_explainer.http_errors import install
from minerlens_explainer.middleware import BodyLimit, RequestMetrics
from minerlens_explainer.routes import console, explanations, feedback, health, models, pods, suppressions
from minerlens_explainer.routes.deps import AUTH_ERRORS, CACHE_HEADER, MODEL_HEADER
from minerlens_explainer.runtime import Runtime
from minerlens_explainer.settings import ExplainerSettings

__all__ = ["CACHE_HEADER", "MODEL_HEADER", "app_from_env", "create_app"]

log = logging.getLogger(__name__)

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "malformed request (unparseable body, bad Content-Length)"},
    413: {"model": ErrorBody, "description": "request body too large"},
    422: {"model": ErrorBody, "description": "invalid parameters or body"},
}


def create_app(
    settings: ExplainerSettings | None = None,
    *,
    backend: ExplainerBackend | None = None,
    kafka: KafkaSettings | None = None,
    runtime: Runtime | None = None,
) -> FastAPI:
    """The API. Tokens and models are loaded here; Kafka ingestion starts with the app's lifespan."""
    rt = runtime or Runtime.create(settings or ExplainerSettings(), backend, kafka)
    s = rt.settings

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(rt.kafka_ingest().run(stop), name="ingest") if s.ingest else None
        try:
            yield
        finally:
            if rt.ingest_progress is not None:
                rt.ingest_progress.stop()
            stop.set()
            if task is not None:
                try:
                    await asyncio.wait_for(task, 10)
                except (TimeoutError, asyncio.CancelledError):
                    task.cancel()
            await rt.close()

    app = FastAPI(
        title="minerlens explainer",
        version=__version__,
        description=(
            "Why was this pod flagged? Verdict history per pod and explanations of its windows (SHAP, LIME, "
            "LSTM autoencoder), computed on demand and cached in Redis. Every route except /healthz and /readyz "
            "needs `Authorization: Bearer <token>` (roles read and admin). Errors are JSON "
            '`{"error": code, "message": text}`. See docs/api.md.'
        ),
        lifespan=lifespan,
        responses=_ERRORS,
        openapi_url="/openapi.json" if s.api_docs else None,
        docs_url="/docs" if s.api_docs else None,
        redoc_url="/redoc" if s.api_docs else None,
    )
    app.state.runtime = rt
    install(app)
    app.add_middleware(BodyLimit, max_bytes=s.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=rt.metrics)
    app.include_router(health.router)
    metrics_router = APIRouter(responses={} if s.metrics_public else AUTH_ERRORS)
    metrics_router.add_api_route(
        "/metrics", health.metrics, methods=["GET"], tags=["health"], response_class=Response,
        summary="Prometheus metrics" + (" (no auth: MINERLENS_EXPLAINER_METRICS_PUBLIC)" if s.metrics_public else ""),
        dependencies=[] if s.metrics_public else [Depends(read_role)],
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )  # fmt: skip
    app.include_router(metrics_router)
    for r in (pods.router, explanations.router, models.router, suppressions.router, feedback.router, console.router):
        app.include_router(r)
    console.install_handlers(app)
    return app


def app_from_env() -> FastAPI:
    """The app from ``MINERLENS_EXPLAINER_*`` (uvicorn factory, used for several worker processes)."""
    return create_app(ExplainerSettings())
