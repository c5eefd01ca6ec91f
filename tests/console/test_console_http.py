"""The console over HTTP (in-process ASGI, real Redis and broker): login, pages, forms; and what a hostile
request or page content gets: escaped, refused, never a token in a page."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from markupsafe import escape
from minerlens_core.schemas.windows import FeatureWindow
from minerlens_core.settings import KafkaSettings
from minerlens_explainer.console.render import CSP
from minerlens_explainer.settings import ExplainerSettings

from tests.explainer.conftest import Api, OwnRedis, Tokens, serve
from tests.explainer.factory import pod_ref
from tests.explainer.operator_data import pod_windows, seed_alert
from tests.integration.services import require_kafka

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def console(
    make_settings: Callable[..., ExplainerSettings], miner_windows: list[FeatureWindow]
) -> AsyncIterator[Api]:
    tag = uuid.uuid4().hex[:8]
    kafka = KafkaSettings(bootstrap=require_kafka(), compression="none")
    settings = make_settings(audit_topic=f"test.audit.{tag}", suppressions_topic=f"test.suppressions.{tag}")
    async with serve(settings, kafka=kafka) as api:
        pod = pod_ref("team-a", "miner-1")
        await seed_alert(api.runtime, pod_windows(miner_windows[:6], pod), pod, comm=XSS[:15], exe="/tmp/" + XSS)
        yield api


async def login(c: httpx.AsyncClient, token: str, name: str = "alice") -> str:
    r = await c.post("/console/login", data={"name": name, "token": token, "next": "/console/alerts"})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/console/alerts"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/console" in cookie
    assert token not in cookie
    page = await c.get("/console/alerts")
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


async def test_pages_need_a_session_and_never_show_the_token(console: Api, tokens: Tokens) -> None:
    c = console.client
    for path in ("/console/", "/console/alerts", "/console/pods/team-a/miner-1", "/console/suppressions",
                 "/console/feedback"):  # fmt: skip
        r = await c.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/console/login?next="), path
    bad = await c.post("/console/login", data={"name": "alice", "token": "not-a-token-" * 3})
    assert bad.status_code == 401
    assert "Unknown token" in bad.text
    await login(c, tokens.read)
    for path in ("/console/", "/console/alerts", "/console/pods/team-a/miner-1?method=lime",
                 "/console/suppressions", "/console/feedback"):  # fmt: skip
        r = await c.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        assert tokens.read not in r.text
        assert tokens.admin not in r.text
        assert r.headers["content-security-policy"] == CSP
        assert "script-src" not in CSP
        assert "default-src 'none'" in CSP
        assert r.headers["x-frame-options"] == "DENY"
    # a read token sees no actions
    page = await c.get("/console/pods/team-a/miner-1")
    assert "Actions need an admin token" in page.text
    assert "False positive" not in page.text


async def test_attacker_text_is_escaped(console: Api, tokens: Tokens) -> None:
    c = console.client
    await login(c, tokens.admin)
    for path in ("/console/alerts", "/console/pods/team-a/miner-1"):
        html = (await c.get(path)).text
        assert "<script" not in html.lower()
        assert "<img" not in html.lower()
        assert str(escape("/tmp/" + XSS)) in html  # the process path, shown as text


async def test_alert_page_shows_what_redis_holds(console: Api, tokens: Tokens) -> None:
    c = console.client
    await login(c, tokens.admin)
    r = await c.get("/console/pods/team-a/miner-1")
    html = r.text
    assert "alert-1" in html
    assert "ghcr.io/acme/web:1.0" in html
    assert "pid 4242" in html
    assert "<polyline" in html
    assert html.count("<circle") == 6
    assert 'class="bar-miner"' in html or 'class="bar-benign"' in html  # the SHAP waterfall
    assert "Syscall mix against benign pods" in html
    assert "bar-ref" in html
    computed = console.computed()
    await c.get("/console/pods/team-a/miner-1")
    assert console.computed() == computed  # the second view reads the cached explanation
    lime = await c.get("/console/pods/team-a/miner-1?method=lime")
    assert 'aria-current="true">lime' in lime.text
    assert (await c.get("/console/pods/team-a/miner-1?method=bogus")).status_code == 422
    assert (await c.get("/console/pods/team-a/nobody")).status_code == 404
    pods = (await c.get("/console/")).text
    assert "team-a/miner-1" in pods
    assert 'class="spark"' in pods


async def test_forms_need_csrf_same_origin_and_admin(console: Api, tokens: Tokens) -> None:
    c = console.client
    csrf = await login(c, tokens.admin)
    fb = {"label": "false_positive", "reason": "video encoder"}
    path = "/console/pods/team-a/miner-1/feedback"
    assert (await c.post(path, data=fb)).status_code == 403  # no CSRF token
    assert (await c.post(path, data={**fb, "csrf": "forged"})).status_code == 403
    cross = await c.post(path, data={**fb, "csrf": csrf}, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    site = await c.post(path, data={**fb, "csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"})
    assert site.status_code == 403
    assert (await c.get("/v1/feedback", headers=tokens.auth())).json()["count"] == 0
    ok = await c.post(path, data={**fb, "csrf": csrf}, headers={"Origin": "http://explainer"})
    assert ok.status_code == 303, ok.text
    stored = (await c.get("/v1/feedback", headers=tokens.auth())).json()["feedback"]
    assert [(f["label"], f["by"]["name"], f["by"]["via"]) for f in stored] == [("false_positive", "alice", "console")]

    bad = await c.post("/console/suppressions", data={"csrf": csrf, "namespace": "team-a", "reason": "r",
                                                      "owner": "o", "days": "500"})  # fmt: skip
    assert bad.status_code == 422
    assert "between 1 and 90" in bad.text
    made = await c.post("/console/suppressions", data={"csrf": csrf, "namespace": "team-a", "process": "xmrig",
                                                       "reason": "lab miner", "owner": "alice", "days": "1",
                                                       "back": "https://evil.example/"})  # fmt: skip
    assert made.status_code == 303
    assert made.headers["location"].startswith("/console/suppressions")
    rules = (await c.get("/v1/suppressions", headers=tokens.auth())).json()["suppressions"]
    assert len(rules) == 1
    assert rules[0]["process"] == "xmrig"

    reader = httpx.AsyncClient(transport=c._transport, base_url="http://explainer")
    async with reader:
        rcsrf = await login(reader, tokens.read, "bob")
        denied = await reader.post(path, data={**fb, "csrf": rcsrf})
        assert denied.status_code == 403
        assert "admin" in denied.text
        gone = await reader.post(f"/console/suppressions/{rules[0]['id']}/delete", data={"csrf": rcsrf})
        assert gone.status_code == 403
    deleted = await c.post(f"/console/suppressions/{rules[0]['id']}/delete", data={"csrf": csrf})
    assert deleted.status_code == 303
    assert (await c.get("/v1/suppressions", headers=tokens.auth())).json()["count"] == 0


async def test_logout_and_rotated_tokens_end_sessions(console: Api, tokens: Tokens) -> None:
    c = console.client
    csrf = await login(c, tokens.admin)
    assert (await c.post("/console/logout", data={"csrf": csrf})).status_code == 303
    assert (await c.get("/console/alerts")).status_code == 303
    # a bearer header works for scripts (no cookie, no CSRF needed: it is not an ambient credential)
    c.cookies.clear()
    r = await c.get("/console/alerts", headers=tokens.auth())
    assert r.status_code == 200
    assert (await c.get("/console/alerts", headers={"Authorization": "Bearer nope-nope-nope"})).status_code == 401


async def test_redis_down_gives_a_page_not_a_trace(
    make_settings: Callable[..., ExplainerSettings], own_redis: OwnRedis, tokens: Tokens,
    miner_windows: list[FeatureWindow],
) -> None:  # fmt: skip
    settings = make_settings(redis_url=own_redis.url, redis_retry_s=0.3, redis_timeout_s=2.0)
    async with serve(settings, kafka=KafkaSettings(bootstrap="127.0.0.1:1")) as api:
        c = api.client
        pod = pod_ref("team-a", "miner-1")
        await seed_alert(api.runtime, pod_windows(miner_windows[:6], pod), pod)
        await login(c, tokens.admin)
        own_redis.kill()
        for path in ("/console/alerts", "/console/", "/console/pods/team-a/miner-1"):
            r = await c.get(path)
            assert r.status_code == 503, (path, r.status_code)
            assert "unavailable" in r.text
            assert r.headers["content-type"].startswith("text/html")
            assert "Traceback" not in r.text
        r = await c.get("/console/alerts", headers=tokens.auth())  # a bearer token: the page store is down too
        assert r.status_code == 503
