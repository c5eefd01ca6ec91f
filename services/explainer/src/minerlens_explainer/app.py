"""The REST API (FastAPI): routes decode the request, call the store / registry / explainer, encode the answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Query
from fastapi.responses import JSONResponse, Response
from minerlens_core.schemas.explanations import Method
from minerlens_core.schemas.windows import FeatureWindow
from minerlens_core.settings import KafkaSettings
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from minerlens_explainer import __version__
from minerlens_explainer.api_models import (
    ErrorBody,
    ExplainedWindow,
    ExplainRequest,
    ExplanationResponse,
    Health,
    IngestState,
    ModelInfo,
    ModelList,
    PodDetail,
    PodList,
    PodSummary,
    PurgeResult,
    Readiness,
    TokenRole,
    WindowInfo,
    WindowSource,
)
from minerlens_explainer.backend import ExplainerBackend
from minerlens_explainer.cache import CacheStatus
from minerlens_explainer.explaining import ExplainerUnavailable, InvalidWindow, WindowData
from minerlens_explainer.http_auth import AdminRole, ReadRole, read_role
from minerlens_explainer.http_errors import ApiError, install
from minerlens_explainer.middleware import BodyLimit, RequestMetrics
from minerlens_explainer.naming import (
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    LABEL_MAX,
    MODEL_NAME,
    SUBDOMAIN_MAX,
    WINDOW_ID,
    PodKey,
)
from minerlens_explainer.redis_link import RedisUnavailable
from minerlens_explainer.registry import LoadedModel, MethodUnsupported, ModelNotFound, ModelRegistry
from minerlens_explainer.runtime import Runtime
from minerlens_explainer.settings import ExplainerSettings
from minerlens_explainer.store import PodRecord
from minerlens_explainer.window_choice import NoWindow, default_window

log = logging.getLogger(__name__)

CACHE_HEADER = "X-Minerlens-Cache"
MODEL_HEADER = "X-Minerlens-Model"

Format = Literal["json", "png"]
Namespace = Annotated[
    str, Path(pattern=DNS1123_LABEL, max_length=LABEL_MAX, description="Kubernetes namespace (DNS-1123 label)")
]
PodName = Annotated[
    str, Path(pattern=DNS1123_SUBDOMAIN, max_length=SUBDOMAIN_MAX, description="pod name (DNS-1123 subdomain)")
]
TopQ = Annotated[int, Query(ge=1, le=50, description="contributions to return")]
ModelQ = Annotated[
    str | None,
    Query(pattern=MODEL_NAME, max_length=253, description="model name (GET /v1/models); default: first"),
]
FormatQ = Annotated[Format, Query(description="json: the explanation; png: a plot of it")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "malformed request (unparseable body, bad Content-Length)"},
    413: {"model": ErrorBody, "description": "request body too large"},
    422: {"model": ErrorBody, "description": "invalid parameters or body"},
}
_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no or unknown bearer token"},
    403: {"model": ErrorBody, "description": "the token's role may not use this route"},
}
_PNG = {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}, "description": "with ?format=png"}
_UNAVAILABLE = {"model": ErrorBody, "description": "Redis (window store) or the model is unavailable"}


def _model_info(m: LoadedModel, registry: ModelRegistry) -> ModelInfo:
    mf = m.manifest
    defaults: list[Method] = []
    for method in ("shap", "lime", "lstm-ae"):
        with contextlib.suppress(MethodUnsupported):
            if registry.pick(method) is m:
                defaults.append(method)
    return ModelInfo(
        name=m.name, version=m.version, manifest_sha256=m.sha256, kind=mf.kind, detector=mf.detector,
        input_kind=mf.input_kind, kind_of_score=mf.kind_of_score, feature_version=mf.feature_version,
        feature_digest=mf.feature_digest, n_features=len(mf.feature_names), sequence_length=mf.sequence_length,
        threshold=mf.threshold, threshold_fpr=mf.threshold_fpr, methods=list(m.methods), created_at=mf.created_at,
        default_for=defaults,
    )  # fmt: skip


def _summary(rec: PodRecord) -> PodSummary:
    return PodSummary(
        namespace=rec.namespace, pod=rec.pod, pod_uid=rec.pod_uid, node=rec.node, last_seen=rec.last_seen,
        alerting=rec.alerting, alert=rec.alert, latest=rec.latest,
    )  # fmt: skip


def _store_down(exc: RedisUnavailable) -> ApiError:
    return ApiError(
        503,
        f"the window store (Redis) is unavailable ({exc}); POST /v1/explain still answers, uncached",
        headers={CACHE_HEADER: "bypass", "Retry-After": "2"},
    )


def _explained(window: FeatureWindow, source: WindowSource, pod: PodKey | None) -> ExplainedWindow:
    return ExplainedWindow(
        window_id=window.window_id, source=source, namespace=pod.namespace if pod else None,
        pod=pod.name if pod else None, policy=window.policy, index=window.index, start_ns=window.start_ns,
        end_ns=window.end_ns,
    )  # fmt: skip


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
    router = APIRouter(responses=_AUTH)  # every route on it needs a token
    app.add_middleware(BodyLimit, max_bytes=s.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=rt.metrics)

    def pick(method: Method, model: str | None) -> LoadedModel:
        if not rt.registry.models:
            raise ApiError(503, "no model is loaded (see GET /readyz and the server log)")
        try:
            return rt.registry.pick(method, model)
        except ModelNotFound as exc:
            raise ApiError(404, str(exc)) from None
        except MethodUnsupported as exc:
            raise ApiError(422, str(exc)) from None

    async def answer(
        model: LoadedModel, method: Method, data: WindowData, top: int, fmt: Format, window: ExplainedWindow
    ) -> Response:
        try:
            if fmt == "png":
                body, status = await rt.explaining.png(model, method, data, top)
                return Response(body, media_type="image/png", headers=_headers(status, model))
            raw, status = await rt.explaining.explanation(model, method, data, top)
        except InvalidWindow as exc:
            raise ApiError(422, str(exc)) from None
        except ExplainerUnavailable as exc:
            raise ApiError(503, str(exc)) from None
        body = b'{"explanation":' + raw + b',"window":' + window.model_dump_json().encode() + b"}"
        return Response(body, media_type="application/json", headers=_headers(status, model))

    # ---- health -----------------------------------------------------------------------------------

    @app.get(
        "/healthz", response_model=Health, tags=["health"], summary="liveness (no auth)",
        responses={503: {"model": Health, "description": "the ingestion died or stopped with messages waiting"}},
    )  # fmt: skip
    async def healthz() -> JSONResponse:
        state = rt.health()
        ok = bool(state.get("ok"))
        ingest = None if rt.ingest_progress is None else {k: v for k, v in state.items() if k != "ok"}
        body = Health(status="ok" if ok else "failing", reason=None if ok else str(state.get("reason")), ingest=ingest)
        return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=200 if ok else 503)

    @app.get(
        "/readyz", response_model=Readiness, tags=["health"], summary="readiness (no auth)",
        responses={503: {"model": Readiness, "description": "no model loaded"}},
    )  # fmt: skip
    async def readyz() -> JSONResponse:
        redis_up = await rt.link.ping()
        st = rt.ingest_status
        body = Readiness(
            ready=bool(rt.registry.models), degraded=not redis_up, redis="up" if redis_up else "down",
            redis_error="" if redis_up else rt.link.last_error, models=len(rt.registry.models),
            ingest=IngestState(enabled=st.enabled, state=st.state, last_error=st.last_error, counts=st.counts),
        )  # fmt: skip
        return JSONResponse(body.model_dump(mode="json"), status_code=200 if body.ready else 503)

    async def metrics() -> Response:
        return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    (app if s.metrics_public else router).add_api_route(
        "/metrics", metrics, methods=["GET"], tags=["health"], response_class=Response,
        summary="Prometheus metrics" + (" (no auth: MINERLENS_EXPLAINER_METRICS_PUBLIC)" if s.metrics_public else ""),
        dependencies=[] if s.metrics_public else [Depends(read_role)],
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )  # fmt: skip

    # ---- pods -------------------------------------------------------------------------------------

    @router.get("/v1/pods", response_model=PodList, tags=["pods"], summary="latest verdict of every recent pod",
             responses={503: _UNAVAILABLE})  # fmt: skip
    async def list_pods(
        _: ReadRole,
        namespace: Annotated[str | None, Query(pattern=DNS1123_LABEL, max_length=LABEL_MAX)] = None,
        alerting: Annotated[bool | None, Query(description="only pods with (true) / without (false) an open alert")]
        = None,
    ) -> PodList:  # fmt: skip
        try:
            records, truncated = await rt.store.pods(namespace)
        except RedisUnavailable as exc:
            raise _store_down(exc) from None
        pods = [_summary(r) for r in records if alerting is None or r.alerting == alerting]
        return PodList(pods=pods, count=len(pods), truncated=truncated)

    async def _pod(pod: PodKey) -> PodRecord:
        rec = await rt.store.pod(pod)
        if rec is None:
            raise ApiError(404, f"no pod {pod} seen in the last {s.window_ttl_s} s")
        return rec

    @router.get("/v1/pods/{namespace}/{pod}", response_model=PodDetail, tags=["pods"],
             summary="verdict history and stored windows of a pod",
             responses={404: {"model": ErrorBody}, 503: _UNAVAILABLE})  # fmt: skip
    async def pod_detail(
        _: ReadRole, namespace: Namespace, pod: PodName,
        limit: Annotated[int, Query(ge=1, le=1000, description="verdicts and windows to return")] = 100,
    ) -> PodDetail:  # fmt: skip
        key = PodKey(namespace, pod)
        try:
            rec = await _pod(key)
            verdicts = await rt.store.verdicts(key, limit)
            windows = await rt.store.windows(key, limit)
        except RedisUnavailable as exc:
            raise _store_down(exc) from None
        infos = [
            WindowInfo(window_id=w.window_id, policy=w.policy, index=w.index, start_ns=w.start_ns, end_ns=w.end_ns,
                       count=w.count, lost_events=w.lost_events, complete=w.complete)
            for w in windows
        ]  # fmt: skip
        return PodDetail(
            namespace=rec.namespace, pod=rec.pod, pod_uid=rec.pod_uid, node=rec.node, last_seen=rec.last_seen,
            alerting=rec.alerting, alert=rec.alert, verdicts=verdicts, windows=infos,
        )  # fmt: skip

    @router.get(
        "/v1/pods/{namespace}/{pod}/explanation", tags=["explanations"],
        summary="explain a window of a pod (default: the window that raised its open alert)",
        response_model=ExplanationResponse,
        responses={200: _PNG, 404: {"model": ErrorBody}, 503: _UNAVAILABLE},
    )  # fmt: skip
    async def pod_explanation(
        _: ReadRole, namespace: Namespace, pod: PodName,
        method: Annotated[Method, Query(description="shap | lime | lstm-ae")] = "shap",
        window: Annotated[str | None, Query(pattern=WINDOW_ID, max_length=512,
                                            description="window id; default: see summary")] = None,
        format: FormatQ = "json", top: TopQ = 10, model: ModelQ = None,
    ) -> Response:  # fmt: skip
        key = PodKey(namespace, pod)
        chosen = pick(method, model)
        try:
            if window is not None:  # one Redis read: the window (its pod is implied)
                w = await rt.store.window(key, window)
                if w is None:
                    raise ApiError(404, f"window {window} of pod {key} is not stored (expired or never seen)")
                source: WindowSource = "requested"
            else:
                w, source = await default_window(rt.store, key, await _pod(key))
        except RedisUnavailable as exc:
            raise _store_down(exc) from None
        except NoWindow as exc:
            raise ApiError(404, str(exc)) from None
        return await answer(chosen, method, WindowData.of(w), top, format, _explained(w, source, key))

    @router.post(
        "/v1/explain", tags=["explanations"], summary="explain a window given in the body",
        response_model=ExplanationResponse, responses={200: _PNG, 404: {"model": ErrorBody}, 503: _UNAVAILABLE},
    )  # fmt: skip
    async def explain(_: ReadRole, request: ExplainRequest, format: FormatQ = "json") -> Response:
        chosen = pick(request.method, request.model)
        if request.window is not None:
            w = request.window
            data = WindowData.of(w)
            pod = PodKey.of(w.envelope.pod)
            info = _explained(w, "body", pod)
        else:
            data = WindowData(request.window_id, request.features, request.sequence)
            info = ExplainedWindow(window_id=request.window_id, source="body")
        return await answer(chosen, request.method, data, request.top, format, info)

    # ---- models and admin -------------------------------------------------------------------------

    @router.get("/v1/models", response_model=ModelList, tags=["models"], summary="the models the explainer serves")
    async def list_models(_: ReadRole) -> ModelList:
        return ModelList(models=[_model_info(m, rt.registry) for m in rt.registry.models], errors=rt.registry.errors)

    @router.get("/v1/whoami", response_model=TokenRole, tags=["models"], summary="the role of the presented token")
    async def whoami(role: ReadRole) -> TokenRole:
        return TokenRole(role=role)

    @router.post("/v1/admin/models/reload", response_model=ModelList, tags=["admin"],
              summary="re-read and re-verify the model artifacts (admin)")  # fmt: skip
    async def reload_models(_: AdminRole) -> ModelList:
        await asyncio.get_running_loop().run_in_executor(rt.executor, rt.registry.reload)
        return ModelList(models=[_model_info(m, rt.registry) for m in rt.registry.models], errors=rt.registry.errors)

    @router.post("/v1/admin/cache/purge", response_model=PurgeResult, tags=["admin"],
              summary="delete cached explanations, of one model or all (admin)",
              responses={503: _UNAVAILABLE})  # fmt: skip
    async def purge_cache(_: AdminRole, model: ModelQ = None) -> PurgeResult:
        try:
            deleted = await rt.flight.purge(rt.explaining.purge_pattern(model))
        except RedisUnavailable as exc:
            raise _store_down(exc) from None
        return PurgeResult(deleted=deleted)

    app.include_router(router)
    return app


def app_from_env() -> FastAPI:
    """The app from ``MINERLENS_EXPLAINER_*`` (uvicorn factory, used for several worker processes)."""
    return create_app(ExplainerSettings())


def _headers(status: CacheStatus, model: LoadedModel) -> dict[str, str]:
    return {CACHE_HEADER: status, MODEL_HEADER: f"{model.name}@{model.version}", "Cache-Control": "private, no-store"}
