"""The responder service on the real Kafka broker: alert in -> audit record out; bad input -> DLQ.

And the same in enforce mode against the fake Kubernetes API, so the whole path (Kafka -> decision ->
HTTP requests -> audit topic) runs for real.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest
from minerlens_core import topics
from minerlens_core.kafka import make_consumer, make_producer, message_headers
from minerlens_core.settings import KafkaSettings
from minerlens_responder.audit import AUDIT_TOPIC, decode_audit
from minerlens_responder.kube_api import KubeApi
from minerlens_responder.policy import parse_policy
from minerlens_responder.responder import Responder
from minerlens_responder.service import ResponderService
from minerlens_responder.settings import ResponderSettings

from tests.integration.services import require_kafka
from tests.responder.alerts import POD_UID, make_finding
from tests.responder.fake_kube import FakeKube, make_pod

pytestmark = [pytest.mark.kafka]

POLICY = parse_policy(
    """
rules:
  - name: high
    match: {min_severity: High}
    actions: [annotate, evict]
"""
)


async def _consume(kafka: KafkaSettings, topic: str, n: int, timeout_s: float = 30.0) -> list[tuple[bytes, bytes]]:
    consumer = make_consumer(kafka, topic, group_id=None)
    await consumer.start()
    out: list[tuple[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(out) < n and time.monotonic() < deadline:
            got = await consumer.getmany(timeout_ms=300)
            out += [(r.key or b"", r.value or b"") for recs in got.values() for r in recs]
    finally:
        await consumer.stop()
    return out


def _alerts(service: ResponderService) -> float:
    return service.metrics.registry.get_sample_value("minerlens_responder_alerts_total") or 0.0


def _settings(suffix: str) -> ResponderSettings:
    return ResponderSettings(
        alerts_topic=f"test.alerts.{suffix}",
        audit_topic=f"test.audit.{suffix}",
        group_id=f"test-responder-{suffix}",
        http_port=0,
        poll_timeout_ms=100,
    )


async def _run_until_consumed(service: ResponderService, n: int, timeout_s: float = 60.0) -> None:
    """Run the service until it consumed ``n`` alert events (or fail after ``timeout_s``)."""
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop=stop))
    try:
        for _ in range(int(timeout_s * 10)):
            if _alerts(service) >= n or task.done():
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await task
    assert _alerts(service) >= n, f"the service consumed {_alerts(service)} of {n} alerts"


async def test_alert_to_audit_record_and_bad_input_to_dlq() -> None:
    kafka = KafkaSettings(bootstrap=require_kafka())
    suffix = uuid.uuid4().hex[:10]
    settings = _settings(suffix)
    producer = make_producer(kafka)
    await producer.start()
    try:
        good = make_finding(alert_id=f"al-{suffix}")
        await producer.send_and_wait(
            settings.alerts_topic, good.model_dump_json().encode(), key=POD_UID.encode(), headers=message_headers(good)
        )
        await producer.send_and_wait(settings.alerts_topic, b'{"not": "a finding"}', key=b"junk")
        await producer.send_and_wait(
            settings.alerts_topic,
            good.model_dump_json().encode(),
            key=b"future",
            headers=[("minerlens.schema_version", b"2")],
        )
    finally:
        await producer.stop()

    service = ResponderService(Responder(POLICY, own_namespace="minerlens"), settings, kafka)
    await _run_until_consumed(service, 3)

    audit = await _consume(kafka, settings.audit_topic, 1)
    assert len(audit) == 1
    key, value = audit[0]
    assert key == POD_UID.encode()
    record = decode_audit(value)
    assert record.alert_id == f"al-{suffix}"
    assert record.mode == "dry-run"
    assert record.outcome == "dry_run"
    assert [(a.action, a.outcome) for a in record.actions] == [("annotate", "planned"), ("evict", "planned")]
    assert record.explanation.explain_path == f"/v1/pods/shop/web-5d9f-abcde/explanation?window=w-al-{suffix}"

    dlq = await _consume(kafka, topics.dead_letter(settings.alerts_topic), 2)
    assert sorted(k for k, _ in dlq) == [b"future", b"junk"]

    # committed: a second run of the same group sees nothing new
    again = ResponderService(Responder(POLICY), settings, kafka)
    await again.run(seconds=3.0)
    assert _alerts(again) == 0


@pytest.mark.slow
async def test_enforce_end_to_end_through_kafka_and_the_api(tmp_path: Path) -> None:
    kafka = KafkaSettings(bootstrap=require_kafka())
    suffix = uuid.uuid4().hex[:10]
    settings = _settings(suffix)
    kube = FakeKube()
    await kube.start()
    kube.add_pod(make_pod("web-5d9f-abcde", POD_UID))
    api = await KubeApi.connect(kube.kubeconfig(tmp_path / "kubeconfig"))
    try:
        producer = make_producer(kafka)
        await producer.start()
        try:
            f = make_finding(alert_id=f"al-{suffix}")
            await producer.send_and_wait(settings.alerts_topic, f.model_dump_json().encode(), key=POD_UID.encode())
        finally:
            await producer.stop()
        service = ResponderService(Responder(POLICY, mode="enforce", api=api), settings, kafka)
        await _run_until_consumed(service, 1)
    finally:
        await api.close()
        await kube.close()

    assert [line[0] for line in kube.lines] == ["GET", "PATCH", "POST"]
    assert ("shop", "web-5d9f-abcde") not in kube.pods
    (_, value), *_ = await _consume(kafka, settings.audit_topic, 1)
    record = json.loads(value)
    assert record["outcome"] == "executed"
    assert record["mode"] == "enforce"
    assert [a["action"] for a in record["actions"]] == ["lookup", "annotate", "evict"]


def test_audit_topic_name() -> None:
    assert AUDIT_TOPIC == "minerlens.audit.v1"
    assert ResponderSettings().audit_topic == AUDIT_TOPIC
