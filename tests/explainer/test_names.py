"""Pod names are Kubernetes names everywhere: on ingest (alerts carry free-form fields), on the API's path
and query parameters (4xx with a message), and in the store's keys (``a/b`` + ``x`` never reads as ``a`` +
``b/x``; an older version's unchecked keys are not listed)."""

from __future__ import annotations

import json

import pytest
import redis
from minerlens_core.schemas.windows import FeatureWindow
from minerlens_explainer.ingest import INVALID_POD, InvalidMessage
from minerlens_explainer.naming import InvalidPodName, PodKey

from tests.explainer.conftest import Api, Tokens
from tests.explainer.factory import finding, pod_ref
from tests.explainer.test_bad_input import _error

pytestmark = pytest.mark.redis

BAD_NAMES = [" ", "*", "a\x00b", "a/b", "A", "-a", "a" * 254, "", "a\nb", "\u202ea"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_pod_keys_refuse_what_is_not_a_kubernetes_name(name: str) -> None:
    with pytest.raises(InvalidPodName):
        PodKey.checked("ns", name)
    with pytest.raises(InvalidPodName):
        PodKey.checked(name if len(name) < 64 else "a" * 64, "pod")
    assert PodKey.checked("team-a", "miner-1.x") == PodKey("team-a", "miner-1.x")
    assert PodKey.parse("a/b/x") is None  # a name with '/' cannot be stored, so a key with two is foreign
    assert PodKey.parse("team-a/miner-1") == PodKey("team-a", "miner-1")


@pytest.mark.parametrize(
    ("namespace", "pod"), [("a/b", "x"), ("a", "b/x"), ("shop", " "), ("shop", "*"), ("shop", "a\x00b"), ("Shop", "x")]
)
async def test_alerts_naming_impossible_pods_are_refused(api: Api, namespace: str, pod: str) -> None:
    alert = finding(pod_ref("team-a", "miner-1"), "alert-x", ["w-1"])
    doc = alert.model_dump(mode="json")
    doc["unmapped"]["minerlens"].update(namespace=namespace, pod=pod)
    raw = json.dumps(doc).encode()
    with pytest.raises(InvalidMessage) as caught:
        await api.runtime.ingestor().handle(api.runtime.settings.alerts_topic, raw)
    if "\x00" in namespace + pod:  # the contract's bounded text refuses control characters already
        assert caught.value.reason in (INVALID_POD, "invalid detection finding")
    else:  # the finding is valid OCSF: the explainer's own check refuses the names
        assert caught.value.reason == INVALID_POD, caught.value
    records, _ = await api.runtime.store.pods()
    assert records == []


@pytest.mark.parametrize(
    ("path", "status", "needle"),
    [
        ("/v1/pods/%20/x", 422, "path.namespace"),
        ("/v1/pods/*/x", 422, "path.namespace"),
        ("/v1/pods/a%00b/x", 422, "path.namespace"),
        ("/v1/pods/shop/%20", 422, "path.pod"),
        ("/v1/pods/shop/*", 422, "path.pod"),
        ("/v1/pods/shop/a%00b", 422, "path.pod"),
        ("/v1/pods/shop/a%0A", 422, "path.pod"),
        ("/v1/pods/a%2Fb/x", 404, ""),  # three segments: no such route
        ("/v1/pods?namespace=a%2Fb", 422, "query.namespace"),
        ("/v1/pods?namespace=a%0A", 422, "query.namespace"),
        ("/v1/pods/shop/x/explanation?model=a%20b", 422, "query.model"),
        ("/v1/pods/shop/x/explanation?model=a%00b", 422, "query.model"),
    ],
)
async def test_api_refuses_impossible_names(api: Api, tokens: Tokens, path: str, status: int, needle: str) -> None:
    r = await api.client.get(path, headers=tokens.auth())
    _error(r, status, needle)


async def test_a_foreign_key_in_the_store_is_not_listed(
    api: Api, tokens: Tokens, redis_url: str, prefix: str, miner_windows: list[FeatureWindow]
) -> None:
    rt = api.runtime
    await rt.ingestor().handle(rt.settings.windows_topic, miner_windows[0].model_dump_json().encode())
    client = redis.Redis.from_url(redis_url)
    try:  # what an older version could store for namespace "a/b" + pod "x"
        client.zadd(f"{prefix}pods", {"a/b/x": 10**13})
    finally:
        client.close()
    r = await api.client.get("/v1/pods", headers=tokens.auth())
    assert r.status_code == 200
    assert [(p["namespace"], p["pod"]) for p in r.json()["pods"]] == [("team-a", "miner-1")]
