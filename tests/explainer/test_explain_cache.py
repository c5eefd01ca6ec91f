"""Explanations through the API with a real model and the real Redis: computed once, then served from
the versioned cache; concurrent identical requests (one process, or two replicas) compute once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from minerlens_core.schemas.explanations import Explanation
from minerlens_core.schemas.windows import FeatureWindow
from minerlens_explainer.app import CACHE_HEADER, MODEL_HEADER
from minerlens_explainer.settings import ExplainerSettings

from tests.explainer.conftest import Api, Artifacts, Tokens, serve

pytestmark = pytest.mark.redis


def body(window: FeatureWindow, method: str = "shap", top: int = 10) -> dict[str, object]:
    return {"method": method, "top": top, "window": window.model_dump(mode="json")}


async def test_second_call_is_a_cache_hit(api: Api, tokens: Tokens, miner_windows: list[FeatureWindow]) -> None:
    w = miner_windows[3]
    first = await api.client.post("/v1/explain", json=body(w), headers=tokens.auth())
    assert first.status_code == 200, first.text
    assert first.headers[CACHE_HEADER] == "miss"
    assert first.headers[MODEL_HEADER] == "test-xgboost@0.1.0"
    assert api.computed() == 1
    second = await api.client.post("/v1/explain", json=body(w), headers=tokens.auth())
    assert second.status_code == 200
    assert second.headers[CACHE_HEADER] == "hit"
    assert api.computed() == 1, "a hit must not compute"
    assert api.metric("minerlens_explainer_cache_lookups_total", {"result": "hit"}) == 1
    assert api.metric("minerlens_explainer_cache_lookups_total", {"result": "miss"}) == 1
    assert second.json() == first.json()

    doc = first.json()
    e = Explanation.model_validate(doc["explanation"])
    assert e.method == "shap"
    assert e.window_id == w.window_id
    assert e.model.name == "test-xgboost"
    assert e.model.version == "0.1.0"
    assert 0 < len(e.contributions) <= 10
    assert e.summary
    assert e.miner is True, "a RandomX miner with sched_yield is flagged"
    assert all(c.direction in ("toward_miner", "toward_benign") for c in e.contributions)
    assert doc["window"] == {
        "window_id": w.window_id, "source": "body", "namespace": "team-a", "pod": "miner-1", "policy": w.policy,
        "index": w.index, "start_ns": w.start_ns, "end_ns": w.end_ns,
    }  # fmt: skip

    # another `top` is another parameter set: another key
    third = await api.client.post("/v1/explain", json=body(w, top=3), headers=tokens.auth())
    assert third.headers[CACHE_HEADER] == "miss"
    assert len(third.json()["explanation"]["contributions"]) <= 3


async def test_bare_feature_vector_and_lime(api: Api, tokens: Tokens, miner_windows: list[FeatureWindow]) -> None:
    w = miner_windows[1]
    r = await api.client.post("/v1/explain", json={"method": "lime", "features": w.features, "window_id": "adhoc-1"},
                              headers=tokens.auth())  # fmt: skip
    assert r.status_code == 200, r.text
    e = r.json()["explanation"]
    assert e["method"] == "lime"
    assert e["window_id"] == "adhoc-1"
    assert e["contributions"]
    assert r.json()["window"] == {"window_id": "adhoc-1", "source": "body", "namespace": None, "pod": None,
                                  "policy": None, "index": None, "start_ns": None, "end_ns": None}  # fmt: skip
    again = await api.client.post("/v1/explain", json={"method": "lime", "features": w.features,
                                  "window_id": "adhoc-1"}, headers=tokens.auth())  # fmt: skip
    assert again.headers[CACHE_HEADER] == "hit"


async def test_png_is_cached_too(api: Api, tokens: Tokens, miner_windows: list[FeatureWindow]) -> None:
    w = miner_windows[2]
    r = await api.client.post("/v1/explain?format=png", json=body(w), headers=tokens.auth())
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    assert r.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(r.content) > 5000
    assert r.headers[CACHE_HEADER] == "miss"
    again = await api.client.post("/v1/explain?format=png", json=body(w), headers=tokens.auth())
    assert again.headers[CACHE_HEADER] == "hit"
    assert again.content == r.content
    js = await api.client.post("/v1/explain", json=body(w), headers=tokens.auth())
    assert js.headers[CACHE_HEADER] == "hit", "the PNG was drawn from the cached explanation"
    assert api.computed() == 1


async def test_new_model_version_misses(
    make_settings: Callable[..., ExplainerSettings], artifacts: Artifacts, tokens: Tokens,
    miner_windows: list[FeatureWindow],
) -> None:  # fmt: skip
    w = miner_windows[4]
    async with serve(make_settings(models=[artifacts.v1])) as v1:
        first = await v1.client.post("/v1/explain", json=body(w), headers=tokens.auth())
        assert first.headers[CACHE_HEADER] == "miss"
        assert (await v1.client.post("/v1/explain", json=body(w), headers=tokens.auth())).headers[CACHE_HEADER] == "hit"
    async with serve(make_settings(models=[artifacts.v2])) as v2:  # same Redis, same key prefix
        r = await v2.client.post("/v1/explain", json=body(w), headers=tokens.auth())
        assert r.headers[CACHE_HEADER] == "miss"
        assert r.headers[MODEL_HEADER] == "test-xgboost@0.2.0"
        assert r.json()["explanation"]["model"]["version"] == "0.2.0"
        assert v2.computed() == 1
    async with serve(make_settings(models=[artifacts.v1])) as again:
        r = await again.client.post("/v1/explain", json=body(w), headers=tokens.auth())
        assert r.headers[CACHE_HEADER] == "hit"
        assert r.json()["explanation"]["model"]["version"] == "0.1.0"
        assert again.computed() == 0


async def test_cache_keys_carry_model_version_method_params_and_window(
    api: Api, tokens: Tokens, miner_windows: list[FeatureWindow], prefix: str
) -> None:
    import redis.asyncio as aredis

    w = miner_windows[5]
    await api.client.post("/v1/explain", json=body(w), headers=tokens.auth())
    client = aredis.Redis.from_url(api.runtime.settings.redis_url)
    try:
        keys = [k.decode() async for k in client.scan_iter(match=f"{prefix}x:*")]
        assert len(keys) == 1
        key = keys[0]
        assert 0 < await client.ttl(key) <= api.runtime.settings.cache_ttl_s
    finally:
        await client.aclose()
    sha = api.runtime.registry.models[0].sha256
    assert key.startswith(f"{prefix}x:test-xgboost:0.1.0:{sha[:12]}:shap:")
    assert f":{w.window_id}#" in key
    # admin purge of the model's entries empties the cache
    r = await api.client.post("/v1/admin/cache/purge?model=test-xgboost", headers=tokens.auth("admin"))
    assert r.json() == {"deleted": 1}
    r = await api.client.post("/v1/explain", json=body(w), headers=tokens.auth())
    assert r.headers[CACHE_HEADER] == "miss"


async def test_window_with_a_known_id_but_other_values_does_not_poison_the_cache(
    api: Api, tokens: Tokens, miner_windows: list[FeatureWindow], benign_windows: list[FeatureWindow]
) -> None:
    real = miner_windows[6]
    forged = real.model_copy(update={"features": benign_windows[0].features})
    a = await api.client.post("/v1/explain", json=body(real), headers=tokens.auth())
    b = await api.client.post("/v1/explain", json=body(forged), headers=tokens.auth())
    assert a.headers[CACHE_HEADER] == b.headers[CACHE_HEADER] == "miss"
    assert a.json()["explanation"]["score"] != b.json()["explanation"]["score"]


async def test_concurrent_identical_requests_compute_once(
    api: Api, tokens: Tokens, miner_windows: list[FeatureWindow]
) -> None:
    w = miner_windows[7]
    rs = await asyncio.gather(*[api.client.post("/v1/explain", json=body(w, "lime"), headers=tokens.auth())
                                for _ in range(8)])  # fmt: skip
    assert all(r.status_code == 200 for r in rs)
    assert api.computed() == 1
    statuses = sorted(r.headers[CACHE_HEADER] for r in rs)
    # one computed it; the others shared it in flight (or, had one arrived after it was stored, read it)
    assert statuses.count("miss") == 1
    assert set(statuses) - {"miss"} <= {"coalesced", "hit"}
    assert statuses.count("coalesced") >= 1
    assert len({r.content for r in rs}) == 1


async def test_two_replicas_compute_once_through_the_redis_lock(
    make_settings: Callable[..., ExplainerSettings], tokens: Tokens, miner_windows: list[FeatureWindow]
) -> None:
    w = miner_windows[8]
    async with serve(make_settings()) as a, serve(make_settings()) as b:
        rs = await asyncio.gather(
            *[c.client.post("/v1/explain", json=body(w, "lime"), headers=tokens.auth()) for c in (a, b, a, b)]
        )
        assert all(r.status_code == 200 for r in rs)
        assert a.computed() + b.computed() == 1
        statuses = sorted(r.headers[CACHE_HEADER] for r in rs)
        assert statuses.count("miss") == 1  # the replica holding the Redis lock
        assert "hit" in statuses  # the other replica waited for the lock holder's value
        assert set(statuses) <= {"miss", "hit", "coalesced"}
