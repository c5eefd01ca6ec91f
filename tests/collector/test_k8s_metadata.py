"""PodMetadataCache against a fake Kubernetes API server (aiohttp.web on 127.0.0.1, token kubeconfig)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from minerlens_collector.agent.k8s_metadata import Owner, PodMetadataCache
from minerlens_core.schemas.envelope import PodRef

NODE = "worker-1"
TOKEN = "test-token-123"
UID_A = "42d4123d-ae8b-4941-aead-64741a830402"
UID_B = "0b1c2d3e-0000-4000-8000-000000000002"
UID_C = "0c1c2d3e-0000-4000-8000-000000000003"
CID_A = "790a" + "0" * 56 + "a706"
CID_A_OLD = "1111" + "0" * 60


def pod(
    uid: str, name: str, labels: dict[str, str], *, rv: int = 1, cid: str | None = None, ns: str = "default"
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running"}
    if cid:
        status["containerStatuses"] = [
            {
                "name": "app",
                "containerID": f"containerd://{cid}",
                "ready": True,
                "restartCount": 1,
                "lastState": {"terminated": {"exitCode": 1, "containerID": f"containerd://{CID_A_OLD}"}},
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "uid": uid,
            "name": name,
            "namespace": ns,
            "labels": labels,
            "resourceVersion": str(rv),
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{name}-rs",
                    "uid": "rs-uid",
                    "controller": True,
                }
            ],
        },
        "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "busybox"}]},
        "status": status,
    }


class FakeKubeApi:
    """Serves GET /api/v1/pods (list and watch=true); records every request's path and query."""

    def __init__(self) -> None:
        self.pods: dict[str, dict[str, Any]] = {}
        self.rv = 100
        self.requests: list[tuple[str, dict[str, str], str]] = []
        self.watches: list[asyncio.Queue[dict[str, Any] | None]] = []
        self.fail_lists = 0
        app = web.Application()
        app.router.add_get("/api/v1/pods", self.handle)
        self.runner = web.AppRunner(app)
        self.port = 0

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def close(self) -> None:
        if self.runner.server is None:
            return
        for q in self.watches:
            q.put_nowait(None)
        await self.runner.cleanup()

    @property
    def lists(self) -> list[dict[str, str]]:
        return [q for _, q, _ in self.requests if "watch" not in q]

    @property
    def watch_queries(self) -> list[dict[str, str]]:
        return [q for _, q, _ in self.requests if "watch" in q]

    def send(self, kind: str, obj: dict[str, Any]) -> None:
        """Push one event to the most recent watch connection."""
        self.watches[-1].put_nowait({"type": kind, "object": obj})

    def send_gone(self) -> None:
        self.watches[-1].put_nowait(
            {
                "type": "ERROR",
                "object": {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": "too old resource version: 100 (250)",
                    "reason": "Expired",
                    "code": 410,
                },
            }
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.query), request.headers.get("Authorization", "")))
        if request.query.get("watch", "").lower() in ("1", "true"):
            return await self._watch(request)
        if self.fail_lists > 0:
            self.fail_lists -= 1
            return web.json_response({"kind": "Status", "code": 503, "message": "unavailable"}, status=503)
        return web.json_response(
            {
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self.rv)},
                "items": list(self.pods.values()),
            }
        )

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.watches.append(queue)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        while (event := await queue.get()) is not None:
            await resp.write(json.dumps(event).encode() + b"\n")
            if event["type"] == "ERROR":  # the API server ends the watch after an ERROR event
                break
        return resp


async def until(cond: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def api() -> AsyncIterator[FakeKubeApi]:
    server = FakeKubeApi()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def kubeconfig(api: FakeKubeApi, tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {  # JSON is valid YAML
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{api.port}"}}],
                "users": [{"name": "u", "user": {"token": TOKEN}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u"}}],
            }
        )
    )
    return str(path)


async def test_list_watch_modify_delete_evict_and_relist_after_410(api: FakeKubeApi, kubeconfig: str) -> None:
    api.pods[UID_A] = pod(UID_A, "miner", {"app": "web"}, rv=90, cid=CID_A)
    cache = PodMetadataCache(NODE, kubeconfig=kubeconfig, deleted_grace_s=0.2)
    await cache.start()
    try:
        # list: exact path/query, token auth, served before start() returned
        assert cache.ready
        assert cache.lists == 1
        path, query, auth = api.requests[0]
        assert path == "/api/v1/pods"
        assert query == {"fieldSelector": f"spec.nodeName={NODE}"}
        assert auth == f"Bearer {TOKEN}"
        assert cache.lookup(UID_A) == PodRef(uid=UID_A, namespace="default", name="miner", labels={"app": "web"})
        assert cache.owner(UID_A) == Owner("ReplicaSet", "miner-rs")
        assert cache.container_name(f"containerd://{CID_A}") == "app"
        assert cache.container_name(CID_A) == "app"
        assert cache.container_name(CID_A_OLD) == "app"  # previous run of a restarted container
        assert cache.lookup(UID_B) is None
        assert cache.container_name("f" * 64) is None

        # watch from the list's resourceVersion, same field selector
        await until(lambda: api.watches)
        _, wq, _ = api.requests[1]
        assert wq["watch"].lower() in ("1", "true")
        assert wq["fieldSelector"] == f"spec.nodeName={NODE}"
        assert wq["resourceVersion"] == "100"
        assert int(wq["timeoutSeconds"]) > 0

        # ADDED
        api.send("ADDED", pod(UID_B, "other", {"tier": "db"}, rv=101, ns="prod"))
        await until(lambda: cache.lookup(UID_B) is not None)
        assert cache.lookup(UID_B) == PodRef(uid=UID_B, namespace="prod", name="other", labels={"tier": "db"})

        # MODIFIED: labels replaced
        api.send("MODIFIED", pod(UID_A, "miner", {"app": "web", "quarantine": "true"}, rv=102, cid=CID_A))
        await until(lambda: "quarantine" in getattr(cache.lookup(UID_A), "labels", {}))
        assert cache.lookup(UID_A).labels == {"app": "web", "quarantine": "true"}  # type: ignore[union-attr]

        # DELETED: still resolvable during the grace period, evicted afterwards
        api.send("DELETED", pod(UID_A, "miner", {"app": "web"}, rv=103, cid=CID_A))
        await until(lambda: cache.watch_events == 3)
        assert cache.lookup(UID_A) is not None
        assert cache.container_name(CID_A) == "app"
        await asyncio.sleep(0.25)
        assert cache.lookup(UID_A) is None
        assert cache.owner(UID_A) is None
        assert cache.container_name(CID_A) is None
        assert cache.container_name(CID_A_OLD) is None
        assert len(cache) == 1

        # 410 Gone -> re-list (B gone from the list, C new), then watch from the new resourceVersion
        api.pods = {UID_C: pod(UID_C, "newcomer", {"x": "y"}, rv=240)}
        api.rv = 250
        api.send_gone()
        await until(lambda: len(api.watches) == 2)
        assert cache.lists == 2
        assert cache.errors == 0
        assert [q for _, q, _ in api.requests] == [
            {"fieldSelector": f"spec.nodeName={NODE}"},
            wq,
            {"fieldSelector": f"spec.nodeName={NODE}"},
            {**wq, "resourceVersion": "250"},
        ]
        assert cache.lookup(UID_C) == PodRef(uid=UID_C, namespace="default", name="newcomer", labels={"x": "y"})
        assert cache.lookup(UID_B) is not None  # missing from the re-list: deleted, but within grace
        await asyncio.sleep(0.25)
        assert cache.lookup(UID_B) is None
    finally:
        await cache.stop()
    assert cache.lookup(UID_C) is not None  # stop() keeps the last known data


async def test_watch_end_resumes_from_last_rv_and_resyncs_by_relist(api: FakeKubeApi, kubeconfig: str) -> None:
    cache = PodMetadataCache(NODE, kubeconfig=kubeconfig)
    await cache.start()
    try:
        await until(lambda: api.watches)
        api.send("ADDED", pod(UID_B, "other", {}, rv=107))
        await until(lambda: cache.lookup(UID_B) is not None)
        api.watches[-1].put_nowait(None)  # server-side watch timeout: stream ends cleanly
        await until(lambda: len(api.watches) == 2)
        assert cache.lists == 1  # within resync_s: no re-list, watch resumes from the last event's rv
        assert api.watch_queries[-1]["resourceVersion"] == "107"
        cache._resync_s = 0  # resync due: the next clean end re-lists
        api.watches[-1].put_nowait(None)
        await until(lambda: len(api.watches) == 3)
        assert cache.lists == 2
        assert len(api.lists) == 2
        assert cache.errors == 0
    finally:
        await cache.stop()


async def test_api_errors_back_off_and_keep_last_known_data(api: FakeKubeApi, kubeconfig: str) -> None:
    api.pods[UID_A] = pod(UID_A, "miner", {"app": "web"})
    api.fail_lists = 2  # first two lists fail with 503
    cache = PodMetadataCache(NODE, kubeconfig=kubeconfig, backoff_initial_s=0.05, backoff_max_s=0.1)
    await cache.start()
    try:
        assert cache.ready
        assert cache.errors == 2
        assert cache.lists == 1
        assert len(api.lists) == 3
        assert cache.lookup(UID_A) is not None

        # API server goes away: the cache keeps its data, counts errors, never raises
        await until(lambda: api.watches)
        await api.close()
        await until(lambda: cache.errors >= 4)
        assert cache.lookup(UID_A) is not None
        assert cache.ready
    finally:
        await cache.stop()


async def test_without_any_config_start_does_not_raise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    cache = PodMetadataCache(NODE)
    with caplog.at_level(logging.WARNING, logger="minerlens_collector.agent.k8s_metadata"):
        await cache.start()
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "enrichment is disabled" in caplog.records[0].getMessage()
    assert not cache.ready
    assert cache.lookup(UID_A) is None
    assert cache.container_name(CID_A) is None
    assert cache.owner(UID_A) is None
    await cache.stop()


async def test_in_cluster_requested_outside_a_cluster_does_not_raise(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    cache = PodMetadataCache(NODE, in_cluster=True)
    with caplog.at_level(logging.WARNING, logger="minerlens_collector.agent.k8s_metadata"):
        await cache.start()
    assert len(caplog.records) == 1
    assert cache.lookup(UID_A) is None
    await cache.stop()
