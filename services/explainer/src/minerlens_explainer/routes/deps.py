"""What every route shares: the runtime as an ``Annotated`` dependency, path/query types, error responses."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query, Request

from minerlens_explainer.api_models import ErrorBody
from minerlens_explainer.http_errors import ApiError
from minerlens_explainer.naming import DNS1123_LABEL, DNS1123_SUBDOMAIN, LABEL_MAX, MODEL_NAME, SUBDOMAIN_MAX
from minerlens_explainer.redis_link import RedisUnavailable
from minerlens_explainer.runtime import Runtime

CACHE_HEADER = "X-Minerlens-Cache"
MODEL_HEADER = "X-Minerlens-Model"


def get_runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
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

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no or unknown bearer token"},
    403: {"model": ErrorBody, "description": "the token's role may not use this route"},
}
PNG = {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}, "description": "with ?format=png"}
UNAVAILABLE = {"model": ErrorBody, "description": "Redis (window store) or the model is unavailable"}
NOT_FOUND = {"model": ErrorBody}


def store_down(exc: RedisUnavailable) -> ApiError:
    return ApiError(
        503,
        f"the window store (Redis) is unavailable ({exc}); POST /v1/explain still answers, uncached",
        headers={CACHE_HEADER: "bypass", "Retry-After": "2"},
    )
