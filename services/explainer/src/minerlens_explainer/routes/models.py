"""The models the explainer serves, the caller's role, and the admin actions (reload, cache purge)."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter
from minerlens_core.schemas.explanations import Method

from minerlens_explainer.api_models import ModelInfo, ModelList, PurgeResult, TokenRole
from minerlens_explainer.http_auth import AdminRole, ReadRole
from minerlens_explainer.redis_link import RedisUnavailable
from minerlens_explainer.registry import LoadedModel, MethodUnsupported, ModelRegistry
from minerlens_explainer.routes.deps import AUTH_ERRORS, UNAVAILABLE, ModelQ, RuntimeDep, store_down

router = APIRouter(responses=AUTH_ERRORS)


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


def _model_list(registry: ModelRegistry) -> ModelList:
    return ModelList(models=[_model_info(m, registry) for m in registry.models], errors=registry.errors)


@router.get("/v1/models", response_model=ModelList, tags=["models"], summary="the models the explainer serves")
async def list_models(_: ReadRole, rt: RuntimeDep) -> ModelList:
    return _model_list(rt.registry)


@router.get("/v1/whoami", response_model=TokenRole, tags=["models"], summary="the role of the presented token")
async def whoami(role: ReadRole) -> TokenRole:
    return TokenRole(role=role)


@router.post("/v1/admin/models/reload", response_model=ModelList, tags=["admin"],
             summary="re-read and re-verify the model artifacts (admin)")  # fmt: skip
async def reload_models(_: AdminRole, rt: RuntimeDep) -> ModelList:
    await asyncio.get_running_loop().run_in_executor(rt.executor, rt.registry.reload)
    return _model_list(rt.registry)


@router.post("/v1/admin/cache/purge", response_model=PurgeResult, tags=["admin"],
             summary="delete cached explanations, of one model or all (admin)",
             responses={503: UNAVAILABLE})  # fmt: skip
async def purge_cache(_: AdminRole, rt: RuntimeDep, model: ModelQ = None) -> PurgeResult:
    try:
        deleted = await rt.flight.purge(rt.explaining.purge_pattern(model))
    except RedisUnavailable as exc:
        raise store_down(exc) from None
    return PurgeResult(deleted=deleted)
