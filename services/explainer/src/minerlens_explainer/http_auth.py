"""The bearer-token dependency of the routes: 401 without a known token, 403 when the role is too low."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from minerlens_explainer.auth import Role, allows, token_digest
from minerlens_explainer.http_errors import ApiError
from minerlens_explainer.operator_models import Actor
from minerlens_explainer.runtime import Runtime

_bearer = HTTPBearer(auto_error=False, description="a token from the tokens file (role read or admin)")


def need(role: Role) -> Callable[..., Awaitable[Role]]:
    """A dependency: the presented bearer token's role, which must allow ``role`` (else 401/403)."""

    async def check(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Role:
        rt: Runtime = request.app.state.runtime
        if creds is None or not creds.credentials:
            rt.metrics.auth_failures.labels("missing").inc()
            raise ApiError(401, "missing bearer token (Authorization: Bearer <token>)",
                           headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        digest = token_digest(creds.credentials)
        got = rt.tokens.role_of_digest(digest)
        if got is None:
            rt.metrics.auth_failures.labels("invalid").inc()
            challenge = 'Bearer error="invalid_token"'
            raise ApiError(401, "invalid bearer token", headers={"WWW-Authenticate": challenge})
        if not allows(got, role):
            rt.metrics.auth_failures.labels("forbidden").inc()
            raise ApiError(403, f"this route needs the {role} role, the token has {got}")
        request.state.token_id = digest.hex()[:12]
        return got

    return check


read_role, admin_role = need("read"), need("admin")
ReadRole = Annotated[Role, Depends(read_role)]
AdminRole = Annotated[Role, Depends(admin_role)]


_OPERATOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$")


async def admin_actor(request: Request, role: AdminRole) -> Actor:
    """Who calls an admin route of the API: ``X-Minerlens-Operator`` (a name, optional) and the token's fingerprint."""
    name = request.headers.get("x-minerlens-operator", "api").strip()
    if not _OPERATOR.match(name):
        raise ApiError(422, "X-Minerlens-Operator: 1-64 letters, digits, spaces or ._@-")
    return Actor(name=name, role=role, token_id=request.state.token_id, via="api")


AdminActor = Annotated[Actor, Depends(admin_actor)]
