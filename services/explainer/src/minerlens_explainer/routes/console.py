"""The operator console's pages and forms (``/console/...``, HTML). Pages read through ``console.pages``;
forms act through ``operator_actions`` (the same code as the REST API). Every page needs a session (or a
bearer header) except the login page; every form needs the session's CSRF token and the same origin."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import RedirectResponse, Response
from minerlens_core.schemas.explanations import Method
from pydantic import ValidationError

from minerlens_explainer.auth import token_digest
from minerlens_explainer.console import pages
from minerlens_explainer.console.forms import (
    ConsoleUser,
    LoginRequired,
    PageError,
    check_post,
    current_user,
    read_form,
    same_origin,
)
from minerlens_explainer.console.render import SECURITY_HEADERS, page
from minerlens_explainer.console.session import COOKIE
from minerlens_explainer.http_errors import ApiError
from minerlens_explainer.naming import DNS1123_LABEL, LABEL_MAX, PodKey
from minerlens_explainer.operator_models import FeedbackRequest, SuppressionRequest
from minerlens_explainer.redis_link import RedisUnavailable
from minerlens_explainer.routes.deps import Namespace, PodName, RuntimeDep
from minerlens_explainer.routes.suppressions import RuleId

router = APIRouter(prefix="/console", include_in_schema=False)
T = TypeVar("T")
_TITLES = {400: "Bad request", 401: "Not logged in", 403: "Forbidden", 404: "Not found", 409: "Conflict",
           413: "Too large", 415: "Unsupported form", 422: "Invalid input", 503: "Unavailable"}  # fmt: skip


async def _user(request: Request, rt: RuntimeDep) -> ConsoleUser | None:
    return await current_user(request, rt)


async def _page_user(user: Annotated[ConsoleUser | None, Depends(_user)]) -> ConsoleUser:
    if user is None:
        raise LoginRequired
    return user


MaybeUser = Annotated[ConsoleUser | None, Depends(_user)]
PageUser = Annotated[ConsoleUser, Depends(_page_user)]


async def _read(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except RedisUnavailable as exc:
        raise PageError(503, f"the pod store (Redis) is unavailable: {exc}", headers={"Retry-After": "2"}) from None


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def _local(url: str, default: str = "/console/") -> str:
    """Only a path of the console itself (no open redirect)."""
    ok = url.startswith("/console/") and "//" not in url and "\\" not in url and all(32 < ord(c) < 127 for c in url)
    return url if ok else default


# ---- login ------------------------------------------------------------------------------------------------


@router.get("")
async def root() -> Response:
    return _see_other("/console/")


@router.get("/login")
async def login_form(next: Annotated[str, Query(max_length=512)] = "/console/") -> Response:
    return page("login.html", user=None, error="", name="", next=_local(next))


@router.post("/login")
async def login(request: Request, rt: RuntimeDep) -> Response:
    same_origin(request)
    form = await read_form(request)
    name, token, nxt = form.get("name", "").strip(), form.get("token", "").strip(), _local(form.get("next", ""))
    error = ""
    digest = token_digest(token) if token else b""
    role = rt.tokens.role_of_digest(digest) if token else None
    if not name or len(name) > 64 or not all(c.isalnum() or c in " ._@-" for c in name):
        error = "Give your name: 1-64 letters, digits, spaces or ._@-"
    elif role is None:
        rt.metrics.auth_failures.labels("invalid" if token else "missing").inc()
        error = "Unknown token."
    if error:
        return page("login.html", status=401, user=None, error=error, name=name[:64], next=nxt)
    assert role is not None
    sid, _ = await _read(rt.sessions.create(role, name, digest))
    secure = rt.settings.console_secure_cookie
    if secure is None:
        secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response = _see_other(nxt)
    response.set_cookie(COOKIE, sid, max_age=rt.settings.console_session_ttl_s, path="/console", httponly=True,
                        samesite="strict", secure=secure)  # fmt: skip
    return response


@router.post("/logout")
async def logout(request: Request, rt: RuntimeDep, user: MaybeUser) -> Response:
    form = await read_form(request)
    check_post(request, user, form, admin=False)
    await _read(rt.sessions.drop(request.cookies.get(COOKIE, "")))
    response = _see_other("/console/login")
    response.delete_cookie(COOKIE, path="/console")
    return response


# ---- pages ------------------------------------------------------------------------------------------------


@router.get("/")
async def pods_page(
    rt: RuntimeDep, user: PageUser,
    namespace: Annotated[str | None, Query(pattern=DNS1123_LABEL, max_length=LABEL_MAX)] = None,
    page_no: Annotated[int, Query(alias="page", ge=1, le=10_000)] = 1,
) -> Response:  # fmt: skip
    ctx: dict[str, Any] = await _read(pages.pods(rt, namespace, page_no))
    return page("pods.html", user=user, nav="pods", **ctx)


@router.get("/alerts")
async def alerts_page(rt: RuntimeDep, user: PageUser) -> Response:
    return page("alerts.html", user=user, nav="alerts", **await _read(pages.alerts(rt)))


@router.get("/pods/{namespace}/{pod}")
async def alert_page(
    rt: RuntimeDep, user: PageUser, namespace: Namespace, pod: PodName,
    method: Annotated[Method, Query(description="shap | lime | lstm-ae")] = "shap",
    notice: Annotated[str, Query(max_length=200)] = "",
) -> Response:  # fmt: skip
    key = PodKey(namespace, pod)
    rec = await _read(rt.store.pod(key))
    if rec is None:
        raise PageError(404, f"no pod {key} seen in the last {rt.settings.window_ttl_s} s")
    ctx = await _read(pages.alert(rt, key, rec, method, user.is_admin))
    return page("alert.html", user=user, nav="alerts", notice=_NOTICES.get(notice, ""), error="", **ctx)


_NOTICES = {
    "feedback": "Your judgement was saved and audited.",
    "suppressed": "The suppression was created, sent to the scorer and audited.",
    "deleted": "The suppression was deleted; matching pods alert again.",
}


@router.get("/suppressions")
async def suppressions_page(
    rt: RuntimeDep, user: PageUser, notice: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    ctx = await _read(pages.suppressions(rt))
    return page("suppressions.html", user=user, nav="suppressions", can_act=user.is_admin,
                notice=_NOTICES.get(notice, ""), error="", **ctx)  # fmt: skip


@router.get("/feedback")
async def feedback_page(rt: RuntimeDep, user: PageUser) -> Response:
    return page("feedback.html", user=user, nav="feedback", **await _read(pages.feedback(rt)))


# ---- forms ------------------------------------------------------------------------------------------------


def _invalid(exc: ValidationError) -> PageError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "form"
    return PageError(422, f"{where}: {first.get('msg', 'invalid')}")


async def _act(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except PageError:
        raise
    except ApiError as exc:
        raise PageError(exc.status, exc.message, headers=exc.headers) from None


@router.post("/pods/{namespace}/{pod}/feedback")
async def give_feedback(request: Request, rt: RuntimeDep, user: MaybeUser, namespace: Namespace,
                        pod: PodName) -> Response:  # fmt: skip
    form = await read_form(request)
    actor = check_post(request, user, form, admin=True).actor()
    try:
        req = FeedbackRequest(label=form.get("label", ""), reason=form.get("reason", ""))  # type: ignore[arg-type]
    except ValidationError as exc:
        raise _invalid(exc) from None
    await _act(rt.actions.add_feedback(PodKey(namespace, pod), req, actor))
    return _see_other(f"/console/pods/{namespace}/{pod}?notice=feedback#feedback")


@router.post("/suppressions")
async def create_suppression(request: Request, rt: RuntimeDep, user: MaybeUser) -> Response:
    form = await read_form(request)
    actor = check_post(request, user, form, admin=True).actor()
    try:
        days = int(form.get("days", ""))
    except ValueError:
        raise PageError(422, "days: a whole number of days (1-90)") from None
    if not 1 <= days <= 90:
        raise PageError(422, "days: between 1 and 90")
    fields = {k: form.get(k, "") for k in ("namespace", "selector", "image", "process", "reason", "owner")}
    try:
        req = SuppressionRequest(**fields, expires_at=datetime.now(UTC) + timedelta(days=days))
    except ValidationError as exc:
        raise _invalid(exc) from None
    await _act(rt.actions.create_suppression(req, actor))
    back = _local(form.get("back", ""), "/console/suppressions")
    sep = "&" if "?" in back else "?"
    return _see_other(f"{back}{sep}notice=suppressed")


@router.post("/suppressions/{rule_id}/delete")
async def delete_suppression(request: Request, rt: RuntimeDep, user: MaybeUser, rule_id: RuleId) -> Response:
    form = await read_form(request)
    actor = check_post(request, user, form, admin=True).actor()
    await _act(rt.actions.delete_suppression(rule_id, actor))
    return _see_other("/console/suppressions?notice=deleted")


# ---- errors -----------------------------------------------------------------------------------------------


def install_handlers(app: FastAPI) -> None:
    """Console errors as pages: no session -> the login page; ``PageError`` -> an HTML error page."""

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return _see_other(f"/console/login?next={quote(_local(target), safe='/')}")

    @app.exception_handler(PageError)
    async def _error(request: Request, exc: PageError) -> Response:
        return page("error.html", status=exc.status, headers=exc.headers, user=None, status_code=exc.status,
                    title=_TITLES.get(exc.status, "Error"), message=exc.message)  # fmt: skip
