"""Explanations of a pod's window (stored) or of a window given in the body."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from minerlens_core.schemas.explanations import Method
from minerlens_core.schemas.windows import FeatureWindow

from minerlens_explainer.api_models import ExplainedWindow, ExplainRequest, ExplanationResponse, WindowSource
from minerlens_explainer.cache import CacheStatus
from minerlens_explainer.explaining import ExplainerUnavailable, InvalidWindow, WindowData
from minerlens_explainer.http_auth import ReadRole
from minerlens_explainer.http_errors import ApiError
from minerlens_explainer.naming import WINDOW_ID, PodKey
from minerlens_explainer.redis_link import RedisUnavailable
from minerlens_explainer.registry import LoadedModel, MethodUnsupported, ModelNotFound
from minerlens_explainer.routes.deps import (
    AUTH_ERRORS,
    CACHE_HEADER,
    MODEL_HEADER,
    NOT_FOUND,
    PNG,
    UNAVAILABLE,
    Format,
    FormatQ,
    ModelQ,
    Namespace,
    PodName,
    RuntimeDep,
    TopQ,
    store_down,
)
from minerlens_explainer.routes.pods import pod_record
from minerlens_explainer.runtime import Runtime
from minerlens_explainer.window_choice import NoWindow, default_window

router = APIRouter(tags=["explanations"], responses=AUTH_ERRORS)


def pick(rt: Runtime, method: Method, model: str | None) -> LoadedModel:
    """The model that explains with ``method`` (``model`` by name, else the default one); 503/404/422 if none."""
    if not rt.registry.models:
        raise ApiError(503, "no model is loaded (see GET /readyz and the server log)")
    try:
        return rt.registry.pick(method, model)
    except ModelNotFound as exc:
        raise ApiError(404, str(exc)) from None
    except MethodUnsupported as exc:
        raise ApiError(422, str(exc)) from None


def _headers(status: CacheStatus, model: LoadedModel) -> dict[str, str]:
    return {CACHE_HEADER: status, MODEL_HEADER: f"{model.name}@{model.version}", "Cache-Control": "private, no-store"}


def _explained(window: FeatureWindow, source: WindowSource, pod: PodKey | None) -> ExplainedWindow:
    return ExplainedWindow(
        window_id=window.window_id, source=source, namespace=pod.namespace if pod else None,
        pod=pod.name if pod else None, policy=window.policy, index=window.index, start_ns=window.start_ns,
        end_ns=window.end_ns,
    )  # fmt: skip


async def _answer(
    rt: Runtime, model: LoadedModel, method: Method, data: WindowData, top: int, fmt: Format, window: ExplainedWindow
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


@router.get(
    "/v1/pods/{namespace}/{pod}/explanation",
    summary="explain a window of a pod (default: the window that raised its open alert)",
    response_model=ExplanationResponse,
    responses={200: PNG, 404: NOT_FOUND, 503: UNAVAILABLE},
)  # fmt: skip
async def pod_explanation(
    _: ReadRole, rt: RuntimeDep, namespace: Namespace, pod: PodName,
    method: Annotated[Method, Query(description="shap | lime | lstm-ae")] = "shap",
    window: Annotated[str | None, Query(pattern=WINDOW_ID, max_length=512,
                                        description="window id; default: see summary")] = None,
    format: FormatQ = "json", top: TopQ = 10, model: ModelQ = None,
) -> Response:  # fmt: skip
    key = PodKey(namespace, pod)
    chosen = pick(rt, method, model)
    try:
        if window is not None:  # one Redis read: the window (its pod is implied)
            w = await rt.store.window(key, window)
            if w is None:
                raise ApiError(404, f"window {window} of pod {key} is not stored (expired or never seen)")
            source: WindowSource = "requested"
        else:
            w, source = await default_window(rt.store, key, await pod_record(rt, key))
    except RedisUnavailable as exc:
        raise store_down(exc) from None
    except NoWindow as exc:
        raise ApiError(404, str(exc)) from None
    return await _answer(rt, chosen, method, WindowData.of(w), top, format, _explained(w, source, key))


@router.post(
    "/v1/explain", summary="explain a window given in the body",
    response_model=ExplanationResponse, responses={200: PNG, 404: NOT_FOUND, 503: UNAVAILABLE},
)  # fmt: skip
async def explain(_: ReadRole, rt: RuntimeDep, request: ExplainRequest, format: FormatQ = "json") -> Response:
    chosen = pick(rt, request.method, request.model)
    if request.window is not None:
        w = request.window
        data = WindowData.of(w)
        info = _explained(w, "body", PodKey.of(w.envelope.pod))
    else:
        data = WindowData(request.window_id, request.features, request.sequence)
        info = ExplainedWindow(window_id=request.window_id, source="body")
    return await _answer(rt, chosen, request.method, data, request.top, format, info)
