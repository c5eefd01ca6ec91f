"""Bearer tokens: every route but health needs one, roles read/admin, unsafe token files refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from minerlens_core.errors import ConfigurationError
from minerlens_explainer.app import create_app
from minerlens_explainer.auth import TokenFile, allows, parse_tokens
from minerlens_explainer.settings import ExplainerSettings

from tests.explainer.conftest import Api, Tokens, serve

pytestmark = pytest.mark.redis

GOOD = "Zk3v9QxP2rT7wLm4Yb8nC1dF6hJ0sA5e"


def test_token_lines_are_parsed_with_roles() -> None:
    entries = parse_tokens(f"# comment\n\nread:{GOOD}\nadmin:{GOOD[::-1]}\n")
    assert [e.role for e in entries] == ["read", "admin"]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "no tokens"),
        ("# only a comment\n", "no tokens"),
        ("read:short", ">= 24"),
        (f"root:{GOOD}", "expected 'read:TOKEN'"),
        (GOOD, "expected 'read:TOKEN'"),
        ("read:changeme-changeme-changeme-123", "placeholder"),
        ("admin:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "placeholder"),
        ("read:EXAMPLE-token-0123456789abcdef", "placeholder"),
        (f"read:{GOOD}\nadmin:{GOOD}", "duplicate"),
        (f"read:{GOOD[:20]} {GOOD[20:]}", "without spaces"),
    ],
)
def test_unsafe_token_files_are_refused(text: str, why: str) -> None:
    with pytest.raises(ConfigurationError, match=why):
        parse_tokens(text)


def test_service_refuses_to_start_without_tokens(
    make_settings: Callable[..., ExplainerSettings], tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError, match="TOKENS_FILE is not set"):
        create_app(make_settings(tokens_file=None))
    empty = tmp_path / "tokens"
    empty.write_text("\n")
    with pytest.raises(ConfigurationError, match="no tokens"):
        create_app(make_settings(tokens_file=empty))
    with pytest.raises(ConfigurationError, match="cannot read"):
        create_app(make_settings(tokens_file=tmp_path / "missing"))


def test_roles_and_constant_time_lookup(tokens: Tokens) -> None:
    tf = TokenFile(tokens.path)
    assert tf.role_of(tokens.read) == "read"
    assert tf.role_of(tokens.admin) == "admin"
    assert tf.role_of(tokens.read + "x") is None
    assert tf.role_of("") is None
    assert allows("admin", "read")
    assert allows("read", "read")
    assert not allows("read", "admin")
    assert not allows(None, "read")


async def test_health_routes_are_open_everything_else_needs_a_token(api: Api, tokens: Tokens) -> None:
    c = api.client
    assert (await c.get("/healthz")).json() == {"status": "ok"}
    ready = await c.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    for method, path in [
        ("GET", "/v1/pods"),
        ("GET", "/v1/pods/team-a/miner-1"),
        ("GET", "/v1/pods/team-a/miner-1/explanation"),
        ("POST", "/v1/explain"),
        ("GET", "/v1/models"),
        ("GET", "/metrics"),
        ("POST", "/v1/admin/cache/purge"),
        ("POST", "/v1/admin/models/reload"),
    ]:
        r = await c.request(method, path)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"] == "unauthorized"
        assert "bearer token" in r.json()["message"]
        assert r.headers["www-authenticate"].startswith("Bearer")
        bad = await c.request(method, path, headers={"Authorization": "Bearer " + "x" * 40})
        assert bad.status_code == 401
        assert bad.json()["message"] == "invalid bearer token"
        basic = await c.request(method, path, headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert basic.status_code == 401
    assert api.metric("minerlens_explainer_auth_failures_total", {"reason": "invalid"}) == 8


async def test_admin_routes_need_the_admin_role(api: Api, tokens: Tokens) -> None:
    c = api.client
    assert (await c.get("/v1/whoami", headers=tokens.auth("read"))).json() == {"role": "read"}
    assert (await c.get("/v1/whoami", headers=tokens.auth("admin"))).json() == {"role": "admin"}
    r = await c.post("/v1/admin/cache/purge", headers=tokens.auth("read"))
    assert r.status_code == 403
    assert "admin role" in r.json()["message"]
    r = await c.post("/v1/admin/cache/purge", headers=tokens.auth("admin"))
    assert r.status_code == 200
    assert r.json() == {"deleted": 0}
    r = await c.post("/v1/admin/models/reload", headers=tokens.auth("admin"))
    assert r.status_code == 200
    assert [m["name"] for m in r.json()["models"]] == ["test-xgboost"]
    assert (await c.get("/v1/models", headers=tokens.auth("read"))).status_code == 200
    assert (await c.get("/metrics", headers=tokens.auth("read"))).status_code == 200


async def test_metrics_can_be_public(make_settings: Callable[..., ExplainerSettings]) -> None:
    async with serve(make_settings(metrics_public=True)) as a:
        r = await a.client.get("/metrics")
        assert r.status_code == 200
        assert "minerlens_explainer_cache_lookups" in r.text


async def test_rotated_token_file_is_picked_up(make_settings: Callable[..., ExplainerSettings], tmp_path: Path) -> None:
    import asyncio
    import os

    path = tmp_path / "tokens"
    path.write_text(f"read:{GOOD}\n")
    async with serve(make_settings(tokens_file=path)) as a:
        auth = {"Authorization": f"Bearer {GOOD}"}
        assert (await a.client.get("/v1/models", headers=auth)).status_code == 200
        new = GOOD[::-1]
        path.write_text(f"read:{new}\n")
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
        await asyncio.sleep(1.1)
        assert (await a.client.get("/v1/models", headers=auth)).status_code == 401
        assert (await a.client.get("/v1/models", headers={"Authorization": f"Bearer {new}"})).status_code == 200
        path.write_text("read:short\n")  # an invalid rotation keeps the previous tokens
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 2 * 10**9))
        await asyncio.sleep(1.1)
        assert (await a.client.get("/v1/models", headers={"Authorization": f"Bearer {new}"})).status_code == 200


async def test_api_docs_can_be_switched_off(make_settings: Callable[..., ExplainerSettings], tokens: Tokens) -> None:
    async with serve(make_settings()) as a:
        assert (await a.client.get("/openapi.json")).status_code == 200
    async with serve(make_settings(api_docs=False)) as a:
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert (await a.client.get(path, headers=tokens.auth())).status_code == 404
