"""Redis killed mid-test: the API still answers (uncached, ``X-Minerlens-Cache: bypass``), /readyz says
so, pod routes say the store is down; when Redis is back the cache is used again.

The test starts its OWN redis-server on a free port and kills only that process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from minerlens_core.schemas.windows import FeatureWindow
from minerlens_explainer.app import CACHE_HEADER
from minerlens_explainer.settings import ExplainerSettings

from tests.explainer.conftest import OwnRedis, Tokens, free_port, serve

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def test_redis_killed_mid_test_still_answers(
    make_settings: Callable[..., ExplainerSettings], own_redis: OwnRedis, tokens: Tokens,
    miner_windows: list[FeatureWindow],
) -> None:  # fmt: skip
    w = miner_windows[0]
    req = {"method": "shap", "window": w.model_dump(mode="json")}
    async with serve(make_settings(redis_url=own_redis.url, redis_retry_s=0.3, redis_timeout_s=2.0)) as api:
        c, auth = api.client, tokens.auth()
        await api.runtime.ingestor().handle(api.runtime.settings.windows_topic, w.model_dump_json().encode())
        assert (await c.post("/v1/explain", json=req, headers=auth)).headers[CACHE_HEADER] == "miss"
        assert (await c.post("/v1/explain", json=req, headers=auth)).headers[CACHE_HEADER] == "hit"
        assert (await c.get("/readyz")).json()["redis"] == "up"

        own_redis.kill()

        for _ in range(3):
            r = await c.post("/v1/explain", json=req, headers=auth)
            assert r.status_code == 200, r.text
            assert r.headers[CACHE_HEADER] == "bypass"
            assert r.json()["explanation"]["window_id"] == w.window_id
        assert api.metric("minerlens_explainer_cache_lookups_total", {"result": "bypass"}) == 3
        assert api.metric("minerlens_explainer_redis_up") == 0
        ready = await c.get("/readyz")
        assert ready.status_code == 200, "still ready: explanations are served, uncached"
        assert ready.json()["redis"] == "down"
        assert ready.json()["degraded"] is True
        assert ready.json()["redis_error"]
        r = await c.get("/v1/pods/team-a/miner-1/explanation", headers=auth)
        assert r.status_code == 503
        assert "Redis" in r.json()["message"]
        assert r.headers[CACHE_HEADER] == "bypass"
        r = await c.get("/v1/pods", headers=auth)
        assert r.status_code == 503
        assert r.json()["error"] == "unavailable"
        assert (await c.get("/v1/models", headers=auth)).status_code == 200
        assert (await c.get("/healthz")).status_code == 200

        own_redis.start()  # same port, empty (no persistence)
        await asyncio.sleep(0.4)  # past the breaker's retry interval
        assert (await c.get("/readyz")).json()["redis"] == "up"
        assert (await c.post("/v1/explain", json=req, headers=auth)).headers[CACHE_HEADER] == "miss"
        assert (await c.post("/v1/explain", json=req, headers=auth)).headers[CACHE_HEADER] == "hit"
        assert api.metric("minerlens_explainer_redis_up") == 1


async def test_redis_down_from_the_start(
    make_settings: Callable[..., ExplainerSettings], tokens: Tokens, miner_windows: list[FeatureWindow]
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    async with serve(make_settings(redis_url=url)) as api:
        ready = await api.client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["redis"] == "down"
        r = await api.client.post("/v1/explain", json={"window": miner_windows[0].model_dump(mode="json")},
                                  headers=tokens.auth())  # fmt: skip
        assert r.status_code == 200
        assert r.headers[CACHE_HEADER] == "bypass"
