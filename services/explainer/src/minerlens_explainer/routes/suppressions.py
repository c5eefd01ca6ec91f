"""Suppression rules: list (read), create and delete (admin). Stored in Redis, sent to the scorer over the
suppressions topic and audited (``operator_actions``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from minerlens_core.suppressions import RULE_ID, SuppressionRule

from minerlens_explainer.api_models import ErrorBody
from minerlens_explainer.http_auth import AdminActor, ReadRole
from minerlens_explainer.operator_models import SuppressionList, SuppressionRequest
from minerlens_explainer.redis_link import RedisUnavailable
from minerlens_explainer.routes.deps import AUTH_ERRORS, NOT_FOUND, UNAVAILABLE, RuntimeDep, store_down

router = APIRouter(tags=["suppressions"], responses=AUTH_ERRORS)
RuleId = Annotated[str, Path(pattern=RULE_ID, description="rule id")]


@router.get("/v1/suppressions", response_model=SuppressionList, summary="the suppression rules (expired ones too)",
            responses={503: UNAVAILABLE})  # fmt: skip
async def list_suppressions(_: ReadRole, rt: RuntimeDep) -> SuppressionList:
    try:
        rules = await rt.ops.suppressions()
    except RedisUnavailable as exc:
        raise store_down(exc) from None
    return SuppressionList(suppressions=rules, count=len(rules))


@router.post("/v1/admin/suppressions", response_model=SuppressionRule, status_code=201,
             summary="create a suppression rule (admin)",
             responses={409: {"model": ErrorBody, "description": "the id exists, or too many rules"},
                        503: UNAVAILABLE})  # fmt: skip
async def create_suppression(actor: AdminActor, rt: RuntimeDep, body: SuppressionRequest) -> SuppressionRule:
    return await rt.actions.create_suppression(body, actor)


@router.delete("/v1/admin/suppressions/{rule_id}", response_model=SuppressionRule,
               summary="delete a suppression rule (admin)", responses={404: NOT_FOUND, 503: UNAVAILABLE})  # fmt: skip
async def delete_suppression(actor: AdminActor, rt: RuntimeDep, rule_id: RuleId) -> SuppressionRule:
    return await rt.actions.delete_suppression(rule_id, actor)
