"""Console requests: who is asking (a session cookie, or a bearer header for scripts and tests), the
same-origin and CSRF checks of state-changing forms, and form bodies (urlencoded, parsed here: no
multipart dependency)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from fastapi import Request

from minerlens_explainer.auth import Role, token_digest
from minerlens_explainer.console.session import COOKIE
from minerlens_explainer.http_errors import ApiError
from minerlens_explainer.operator_models import Actor
from minerlens_explainer.redis_link import RedisUnavailable
from minerlens_explainer.runtime import Runtime

MAX_FIELD = 4096


class LoginRequired(Exception):
    """A page was asked for without a session: the browser is sent to the login page."""


class PageError(ApiError):
    """An error shown as a console page (HTML), not as the API's JSON."""


@dataclass(frozen=True)
class ConsoleUser:
    name: str
    role: Role
    token_id: str
    csrf: str | None
    """the session's CSRF token; None when the request carried a bearer token (no ambient credential)"""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def actor(self) -> Actor:
        return Actor(name=self.name, role=self.role, token_id=self.token_id, via="console")


async def current_user(request: Request, rt: Runtime) -> ConsoleUser | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        digest = token_digest(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        role = rt.tokens.role_of_digest(digest) if digest is not None else None
        if digest is None or role is None:
            rt.metrics.auth_failures.labels("invalid").inc()
            raise PageError(401, "invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
        return ConsoleUser("api", role, digest.hex()[:12], None)
    sid = request.cookies.get(COOKIE, "")
    if not sid:
        return None
    try:
        session = await rt.sessions.get(sid)
    except RedisUnavailable as exc:
        raise PageError(503, f"the console's session store (Redis) is unavailable: {exc}") from None
    if session is None:
        return None
    role = rt.tokens.role_of_digest(bytes.fromhex(session.token_sha256))
    if role is None:  # the token was rotated out of the tokens file: its sessions end
        return None
    return ConsoleUser(session.name, role, session.token_id, session.csrf)


def same_origin(request: Request) -> None:
    """Refuse a form posted from another site (``Origin``/``Sec-Fetch-Site``, when the browser sends them)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise PageError(403, f"cross-site form refused (Sec-Fetch-Site: {site[:20]})")
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc != host:
            raise PageError(403, "cross-origin form refused (Origin does not match Host)")
    elif origin == "null":
        raise PageError(403, "form from an opaque origin refused")


async def read_form(request: Request) -> dict[str, str]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise PageError(415, "forms are sent as application/x-www-form-urlencoded")
    try:
        text = (await request.body()).decode()
        parsed = parse_qs(text, keep_blank_values=True, strict_parsing=False, max_num_fields=50)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PageError(400, f"unreadable form: {exc}") from None
    out = {k: v[0] for k, v in parsed.items() if v}
    if any(len(v) > MAX_FIELD for v in out.values()):
        raise PageError(413, f"a form field is longer than {MAX_FIELD} characters")
    return out


def check_post(request: Request, user: ConsoleUser | None, form: dict[str, str], *, admin: bool) -> ConsoleUser:
    """A state-changing form: a user (401), same origin, the session's CSRF token (403), the role (403)."""
    if user is None:
        raise PageError(401, "log in first (your session ended)")
    same_origin(request)
    if user.csrf is not None and not hmac.compare_digest(form.get("csrf", "").encode(), user.csrf.encode()):
        raise PageError(403, "the form's CSRF token is missing or stale: reload the page and try again")
    if admin and not user.is_admin:
        raise PageError(403, "this needs an admin token")
    return user
