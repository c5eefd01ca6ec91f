"""The explainer's ingestion and store against poison, stalls, Redis restarts and SIGTERM (real broker, real
Redis; each test its own topics, consumer group and key prefix, and its own redis-server where it restarts one):

* invalid messages, pods with impossible names and messages whose storing raises go to the topics'
  DLQs with the reason and are committed, the good messages are stored (the raises are simulated by
  monkeypatching the store: no real message makes it raise);
* ``/healthz`` answers 503 with a reason when the ingestion stalls with messages waiting or its task dies;
* the pod store survives a Redis restart: with the project's Redis (``scripts/redis.sh``, append-only
  file) the data is still there; with a Redis that lost everything the ingestion refills it from the topics;
* ``minerlens explainer run`` and ``minerlens explainer ingest`` stop on SIGTERM within 10 s with status 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from minerlens_core.kafka import make_producer
from minerlens_core.schemas.windows import FeatureWindow
from minerlens_core.settings import KafkaSettings
from minerlens_core.topics import dead_letter
from minerlens_explainer.ingest import Ingestor
from minerlens_explainer.redis_link import RedisCommandError
from minerlens_explainer.settings import ExplainerSettings
from minerlens_explainer.store import PodStore

from tests.explainer.conftest import Api, Artifacts, OwnRedis, Tokens, free_port, serve
from tests.explainer.factory import finding, pod_ref, verdict_for
from tests.explainer.test_pods import MODEL
from tests.integration.services import require_kafka
from tests.kafka_io import read_records

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _topics(tag: str) -> dict[str, str]:
    return {
        "group_id": f"test-explainer-{tag}",
        "windows_topic": f"test.windows.{tag}",
        "verdicts_topic": f"test.verdicts.{tag}",
        "alerts_topic": f"test.alerts.{tag}",
    }


async def _produce(kafka: KafkaSettings, messages: list[tuple[str, bytes, bytes]]) -> None:
    producer = make_producer(kafka)
    await producer.start()
    try:
        for topic, key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def _read(kafka: KafkaSettings, topic: str, expect: int, timeout_s: float = 30) -> list[Any]:
    return await read_records(kafka, topic, expect, timeout_s)


def _pod_messages(s: ExplainerSettings, windows: list[FeatureWindow]) -> list[tuple[str, bytes, bytes]]:
    out = []
    for w in windows:
        out.append((s.windows_topic, w.envelope.key, w.model_dump_json().encode()))
        out.append((s.verdicts_topic, w.envelope.key, verdict_for(w, 0.9, MODEL).model_dump_json().encode()))
    return out


async def _detail(
    api: Api,
    tokens: Tokens,
    path: str,
    windows: int,
    timeout_s: float = 60,
    *,
    alerting: bool = False,
    verdicts: bool = False,
) -> dict[str, Any]:
    """The pod's detail once ``windows`` windows are stored (and as many verdicts with ``verdicts`` or
    ``alerting``: the store may hold a pod's windows before its verdicts arrive)."""
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = await api.client.get(path, headers=tokens.auth())
        body = r.json() if r.status_code == 200 else {"status": r.status_code}
        stored = len(body.get("windows", [])) >= windows and len(body.get("verdicts", [])) >= windows * (
            alerting or verdicts
        )
        if stored and (body.get("alerting") or not alerting):
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path}: {body}")


async def test_poison_messages_are_dead_lettered_and_the_rest_is_stored(
    make_settings: Callable[..., ExplainerSettings], tokens: Tokens, miner_windows: list[FeatureWindow],
    benign_windows: list[FeatureWindow], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    kafka = KafkaSettings(bootstrap=require_kafka(), compression="none")
    s = make_settings(ingest=True, **_topics(uuid.uuid4().hex[:8]))
    boom, refused = benign_windows[0], benign_windows[1]
    boom_w = boom.model_copy(update={"window_id": "boom"})
    refused_w = refused.model_copy(update={"window_id": "refused"})
    real_add = PodStore.add_window

    async def add_window(self: PodStore, pod: Any, window: FeatureWindow) -> None:  # simulated store failures
        if window.window_id == "boom":
            raise ZeroDivisionError("simulated")
        if window.window_id == "refused":
            raise RedisCommandError("ResponseError: simulated")
        await real_add(self, pod, window)

    monkeypatch.setattr(PodStore, "add_window", add_window)
    impossible = json.loads(miner_windows[0].model_dump_json())
    impossible["lost_events"] = 10**100
    bad_alert = finding(pod_ref("team-a", "miner-1"), "alert-bad", []).model_dump(mode="json")
    bad_alert["unmapped"]["minerlens"].update(namespace="a/b", pod="x")
    good = miner_windows[:4]
    poison = [
        (s.windows_topic, b"x", b"\xff\x00 garbage"),
        (s.windows_topic, b"x", json.dumps(impossible).encode()),
        (s.windows_topic, boom.envelope.key, boom_w.model_dump_json().encode()),
        (s.windows_topic, refused.envelope.key, refused_w.model_dump_json().encode()),
        (s.alerts_topic, b"x", json.dumps(bad_alert).encode()),
    ]
    await _produce(kafka, [*poison, *_pod_messages(s, good)])
    t0 = time.monotonic()
    async with serve(s, kafka=kafka) as api:
        detail = await _detail(api, tokens, "/v1/pods/team-a/miner-1", len(good), verdicts=True)
        took = time.monotonic() - t0
        health = await api.client.get("/healthz")
        windows_dlq = await _read(kafka, dead_letter(s.windows_topic), 4)
        alerts_dlq = await _read(kafka, dead_letter(s.alerts_topic), 1)
        await asyncio.sleep(0.5)
        counts = api.runtime.ingest_status.counts
    assert len(detail["verdicts"]) == len(good)
    assert health.status_code == 200, health.text
    reasons = sorted(dict(r.headers)["error.reason"].decode() for r in windows_dlq)
    assert reasons == ["internal error", "invalid feature window", "invalid feature window", "store error"]
    by = {dict(r.headers)["error.reason"]: dict(r.headers) for r in windows_dlq}
    assert by[b"internal error"]["error.class"] == b"ZeroDivisionError"
    assert by[b"store error"]["error.class"] == b"RedisCommandError"
    assert [dict(r.headers)["error.reason"] for r in alerts_dlq] == [b"invalid pod name"]
    assert b"not a DNS-1123 label" in dict(alerts_dlq[0].headers)["error.msg"]
    assert counts[f"{s.windows_topic}:dead_lettered"] == 4
    assert counts[f"{s.windows_topic}:stored"] == len(good)
    print(f"\n{len(good)} windows of the good pod served {took:.1f} s after the start; 5 poison messages dead-lettered")


async def test_healthz_fails_when_the_ingestion_stalls_or_dies(
    make_settings: Callable[..., ExplainerSettings], miner_windows: list[FeatureWindow],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    kafka = KafkaSettings(bootstrap=require_kafka(), compression="none")
    s = make_settings(ingest=True, stall_timeout_s=2.0, **_topics(uuid.uuid4().hex[:8]))
    await _produce(kafka, _pod_messages(s, miner_windows[:1]))  # the topics exist before it subscribes
    real_handle = Ingestor.handle

    async def handle(self: Ingestor, topic: str, value: bytes | None) -> Any:  # simulated: a store that hangs
        if value and b"stall-me" in value:
            await asyncio.Event().wait()
        return await real_handle(self, topic, value)

    monkeypatch.setattr(Ingestor, "handle", handle)
    async with serve(s, kafka=kafka) as api:
        deadline = time.monotonic() + 60
        while api.runtime.ingest_status.counts.get(f"{s.verdicts_topic}:stored", 0) < 1:
            assert time.monotonic() < deadline, api.runtime.ingest_status
            await asyncio.sleep(0.1)
        assert (await api.client.get("/healthz")).status_code == 200
        stall = miner_windows[1].model_copy(update={"window_id": "stall-me"})
        await _produce(kafka, [(s.windows_topic, stall.envelope.key, stall.model_dump_json().encode())])
        t0 = time.monotonic()
        while (r := await api.client.get("/healthz")).status_code == 200:
            assert time.monotonic() - t0 < 30, r.json()
            await asyncio.sleep(0.2)
        stalled = r.json()
        stalled_after = time.monotonic() - t0
        task = next(t for t in asyncio.all_tasks() if t.get_name() == "ingest")
        task.cancel()  # the ingestion dies (the API itself lives on)
        await asyncio.sleep(0.1)
        died = await api.client.get("/healthz")
    assert r.status_code == 503
    assert stalled["status"] == "failing"
    assert "no message processed" in stalled["reason"], stalled
    assert died.status_code == 503
    assert "task ended (cancelled)" in died.json()["reason"], died.json()
    print(f"\n/healthz 503 {stalled_after:.1f} s after the message arrived: {stalled['reason']}")


def _redis_sh(port: int, home: Path, command: str) -> None:
    env = {**os.environ, "REDIS_PORT": str(port), "REDIS_HOME_DIR": str(home)}
    subprocess.run(["bash", str(ROOT / "scripts" / "redis.sh"), command], env=env, check=True, timeout=60)


async def test_pods_survive_a_restart_of_the_projects_redis(
    make_settings: Callable[..., ExplainerSettings], tokens: Tokens, miner_windows: list[FeatureWindow],
    tmp_path: Path,
) -> None:  # fmt: skip
    """scripts/redis.sh (append-only file, fsync every second) on a port of this test: stop/start and kill -9."""
    port, home = free_port(), tmp_path / "redis"
    _redis_sh(port, home, "start")
    try:
        s = make_settings(redis_url=f"redis://127.0.0.1:{port}/0", redis_retry_s=0.1)
        async with serve(s) as api:
            for topic, _, value in _pod_messages(s, miner_windows[:5]):
                await api.runtime.ingestor().handle(topic, value)
            before = await _detail(api, tokens, "/v1/pods/team-a/miner-1", 5, timeout_s=5)
            _redis_sh(port, home, "stop")
            _redis_sh(port, home, "start")
            after = await _detail(api, tokens, "/v1/pods/team-a/miner-1", 5, timeout_s=10)
            assert after == {**before, "last_seen": after["last_seen"]}
            await api.runtime.ingestor().handle(s.windows_topic, miner_windows[5].model_dump_json().encode())
            await asyncio.sleep(1.5)  # appendfsync everysec: on disk within a second
            pid = int((home / "redis.pid").read_text())
            os.kill(pid, signal.SIGKILL)  # a crash, not a shutdown
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                await asyncio.sleep(0.1)
            _redis_sh(port, home, "start")
            crashed = await _detail(api, tokens, "/v1/pods/team-a/miner-1", 6, timeout_s=10)
            assert miner_windows[5].window_id in {w["window_id"] for w in crashed["windows"]}
    finally:
        _redis_sh(port, home, "stop")


async def test_an_emptied_store_is_rebuilt_from_the_topics(
    make_settings: Callable[..., ExplainerSettings], tokens: Tokens, miner_windows: list[FeatureWindow],
    own_redis: OwnRedis,
) -> None:  # fmt: skip
    """A Redis without persistence restarts empty: the ingestion notices (marker gone) and refills the store."""
    kafka = KafkaSettings(bootstrap=require_kafka(), compression="none")
    s = make_settings(
        ingest=True, redis_url=own_redis.url, redis_retry_s=0.1, check_store_s=0.5, **_topics(uuid.uuid4().hex[:8])
    )
    pod = pod_ref("team-a", "miner-1")
    alert = finding(pod, "alert-rebuild", [miner_windows[2].window_id])
    await _produce(
        kafka, [*_pod_messages(s, miner_windows[:6]), (s.alerts_topic, b"k", alert.model_dump_json().encode())]
    )
    async with serve(s, kafka=kafka) as api:
        before = await _detail(api, tokens, "/v1/pods/team-a/miner-1", 6, alerting=True)
        own_redis.kill()
        own_redis.start()  # same port, empty
        t0 = time.monotonic()
        r = await api.client.get("/v1/pods/team-a/miner-1", headers=tokens.auth())
        assert r.status_code in (404, 503), r.text  # gone for now
        after = await _detail(api, tokens, "/v1/pods/team-a/miner-1", 6, timeout_s=30, alerting=True)
        took = time.monotonic() - t0
        rebuilt = api.metric("minerlens_explainer_rebuilt_messages_total")
    assert [w["window_id"] for w in after["windows"]] == [w["window_id"] for w in before["windows"]]
    assert [v["window_id"] for v in after["verdicts"]] == [v["window_id"] for v in before["verdicts"]]
    assert after["alerting"] is True
    assert rebuilt >= 13
    print(f"\nthe emptied store answered again {took:.1f} s after the Redis restart ({rebuilt:.0f} messages rebuilt)")


def _ready(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return int(r.status) == 200
    except OSError:
        return False


@pytest.mark.parametrize("command", ["run", "ingest"])
def test_sigterm_stops_the_explainer(
    command: str, tmp_path: Path, artifacts: Artifacts, tokens: Tokens, redis_url: str, prefix: str,
    miner_windows: list[FeatureWindow],
) -> None:  # fmt: skip
    bootstrap = require_kafka()
    tag = uuid.uuid4().hex[:8]
    port = free_port()
    env = {
        **os.environ,
        "MINERLENS_KAFKA_BOOTSTRAP": bootstrap,
        "MINERLENS_EXPLAINER_KEY_PREFIX": prefix,
        "MINERLENS_EXPLAINER_PORT": str(port),
        "MINERLENS_EXPLAINER_HOST": "127.0.0.1",
        **{f"MINERLENS_EXPLAINER_{k.upper()}": v for k, v in _topics(tag).items()},
    }
    cli = str(Path(sys.executable).with_name("minerlens"))
    argv = [cli, "explainer", command, "--model", str(artifacts.v1), "--tokens-file", str(tokens.path)]
    log = tmp_path / "explainer.log"
    w = miner_windows[0]
    asyncio.run(
        _produce(
            KafkaSettings(bootstrap=bootstrap), [(f"test.windows.{tag}", w.envelope.key, w.model_dump_json().encode())]
        )
    )
    with log.open("wb") as f:
        proc = subprocess.Popen([*argv, "--redis-url", redis_url], env=env, stdout=f, stderr=f)
    client = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 90
        # ingesting (the window is in Redis) and, for `run`, serving
        while not client.exists(f"{prefix}pod:{{team-a/miner-1}}:w") or (command == "run" and not _ready(port)):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        took = time.monotonic() - t0
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, log.read_text()[-3000:]
    print(f"\nexplainer {command}: exit {code} {took:.2f} s after SIGTERM")
