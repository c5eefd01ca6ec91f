"""Ingestion from the live Kafka broker (unique topics): windows, verdicts and alerts reach the store and
the API; invalid messages go to the dead-letter topics with the reason in headers; nothing crashes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest
from minerlens_core.kafka import make_consumer, make_producer
from minerlens_core.schemas.windows import FeatureWindow
from minerlens_core.settings import KafkaSettings
from minerlens_core.topics import dead_letter
from minerlens_explainer.settings import ExplainerSettings

from tests.explainer.conftest import OwnRedis, Tokens, serve
from tests.explainer.factory import finding, pod_ref, verdict_for
from tests.explainer.test_pods import MODEL
from tests.integration.services import require_kafka

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]


async def _dead_letters(kafka: KafkaSettings, topic: str, expect: int, timeout_s: float = 30) -> list[object]:
    consumer = make_consumer(kafka, topic, group_id=None)
    await consumer.start()
    out: list[object] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(out) < expect and time.monotonic() < deadline:
            got = await consumer.getmany(timeout_ms=500)
            out += [r for recs in got.values() for r in recs]
    finally:
        await consumer.stop()
    return out


async def test_ingestion_from_live_kafka(
    make_settings: Callable[..., ExplainerSettings], tokens: Tokens, miner_windows: list[FeatureWindow]
) -> None:
    kafka = KafkaSettings(bootstrap=require_kafka(), compression="none")
    tag = uuid.uuid4().hex[:8]
    settings = make_settings(
        ingest=True, group_id=f"test-explainer-{tag}", windows_topic=f"test.windows.{tag}",
        verdicts_topic=f"test.verdicts.{tag}", alerts_topic=f"test.alerts.{tag}",
    )  # fmt: skip
    pod = pod_ref("team-a", "miner-1")
    windows = miner_windows[:5]
    producer = make_producer(kafka)
    await producer.start()
    try:
        for w in windows:
            key = w.envelope.key
            await producer.send_and_wait(settings.windows_topic, w.model_dump_json().encode(), key=key)
            v = verdict_for(w, 0.9, MODEL)
            await producer.send_and_wait(settings.verdicts_topic, v.model_dump_json().encode(), key=key)
        await producer.send_and_wait(settings.windows_topic, b"\xff garbage", key=b"x")
        await producer.send_and_wait(settings.verdicts_topic, b'{"kind": "verdict"}', key=b"x")
        alert = finding(pod, f"alert-{tag}", [windows[2].window_id])
        await producer.send_and_wait(settings.alerts_topic, alert.model_dump_json().encode(), key=pod.uid.encode())
        await producer.send_and_wait(settings.alerts_topic, b"null", key=b"x")
    finally:
        await producer.stop()

    async with serve(settings, kafka=kafka) as api:
        deadline = time.monotonic() + 60
        detail: dict[str, object] = {}
        while time.monotonic() < deadline:
            r = await api.client.get("/v1/pods/team-a/miner-1", headers=tokens.auth())
            detail = r.json() if r.status_code == 200 else {}
            if len(detail.get("verdicts", [])) == 5 and detail.get("alerting"):  # type: ignore[arg-type]
                break
            await asyncio.sleep(0.3)
        assert len(detail["windows"]) == 5, detail  # type: ignore[arg-type]
        assert detail["alerting"] is True
        r = await api.client.get("/v1/pods/team-a/miner-1/explanation", headers=tokens.auth())
        assert r.status_code == 200
        assert r.json()["window"] == {**r.json()["window"], "source": "alert", "window_id": windows[2].window_id}
        ready = (await api.client.get("/readyz")).json()
        assert ready["ingest"]["enabled"] is True
        assert ready["ingest"]["state"] == "consuming"
        for topic in (settings.windows_topic, settings.verdicts_topic, settings.alerts_topic):
            dl = await _dead_letters(kafka, dead_letter(topic), 1)
            assert len(dl) == 1, topic
            headers = dict(dl[0].headers)  # type: ignore[attr-defined]
            assert headers["source.topic"] == topic.encode()
            assert int(headers["source.partition"]) >= 0
            assert headers["error.reason"].startswith(b"invalid")
        # the dead letters are out, so every record was handled: read the counts only now (no race)
        counts = (await api.client.get("/readyz")).json()["ingest"]["counts"]
        assert counts[f"{settings.windows_topic}:stored"] == 5
        assert counts[f"{settings.windows_topic}:dead_lettered"] == 1
        assert api.metric("minerlens_explainer_ingested_messages_total",
                          {"topic": settings.alerts_topic, "outcome": "dead_lettered"}) == 1  # fmt: skip


async def test_ingestion_waits_for_redis_instead_of_dropping(
    make_settings: Callable[..., ExplainerSettings], tokens: Tokens, miner_windows: list[FeatureWindow],
    own_redis: OwnRedis,
) -> None:  # fmt: skip
    """Redis down while messages arrive: they are retried (not dead-lettered, not committed) until it is back."""
    kafka = KafkaSettings(bootstrap=require_kafka(), compression="none")
    tag = uuid.uuid4().hex[:8]
    settings = make_settings(
        ingest=True, group_id=f"test-explainer-{tag}", windows_topic=f"test.windows.{tag}",
        verdicts_topic=f"test.verdicts.{tag}", alerts_topic=f"test.alerts.{tag}", redis_url=own_redis.url,
        redis_retry_s=0.1,
    )  # fmt: skip
    own_redis.kill()
    producer = make_producer(kafka)
    await producer.start()
    try:
        for w in miner_windows[:3]:
            await producer.send_and_wait(settings.windows_topic, w.model_dump_json().encode(), key=w.envelope.key)
    finally:
        await producer.stop()
    async with serve(settings, kafka=kafka) as api:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and api.runtime.ingest_status.state != "waiting for Redis":  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        assert api.runtime.ingest_status.state == "waiting for Redis"
        assert (await api.client.get("/readyz")).json()["ingest"]["state"] == "waiting for Redis"
        own_redis.start()
        deadline = time.monotonic() + 30
        n = 0
        while time.monotonic() < deadline and n < 3:
            r = await api.client.get("/v1/pods/team-a/miner-1", headers=tokens.auth())
            n = len(r.json()["windows"]) if r.status_code == 200 else 0
            await asyncio.sleep(0.2)
        assert n == 3
        assert not await _dead_letters(kafka, dead_letter(settings.windows_topic), 1, timeout_s=3)
