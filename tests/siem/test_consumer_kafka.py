"""The exporter against the real Kafka broker: alerts in, ECS/stdout/HEC out, poison to the DLQ, offsets
committed only after delivery (at-least-once)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from minerlens_core import topics
from minerlens_core.kafka import make_consumer, make_producer, message_headers
from minerlens_core.settings import KafkaSettings
from minerlens_siem.consumer import AlertConsumer
from minerlens_siem.metrics import SiemMetrics
from minerlens_siem.outputs import make_output
from minerlens_siem.settings import SiemSettings

from tests.integration.services import require_kafka
from tests.siem.fake_hec import TOKEN, FakeHec
from tests.siem.findings import finding_json, make_finding
from tests.siem.test_ecs import validate_ecs

pytestmark = pytest.mark.kafka


def unique(name: str) -> str:
    return f"test.{name}.{uuid.uuid4().hex[:10]}"


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, list[tuple[str, bytes]]]]) -> None:
    producer = make_producer(KafkaSettings(bootstrap=bootstrap))
    await producer.start()
    try:
        for value, headers in messages:
            await producer.send_and_wait(topic, value, key=b"pod-uid", partition=0, headers=headers)
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str, expect: int, timeout_s: float = 20) -> list[Any]:
    consumer = make_consumer(KafkaSettings(bootstrap=bootstrap), topic, group_id=None)
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(records) < expect:
            got = await consumer.getmany(timeout_ms=300)
            records += [r for recs in got.values() for r in recs]
    finally:
        await consumer.stop()
    return records


async def committed(bootstrap: str, group: str, topic: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()


async def run_until(consumer: AlertConsumer, done: Callable[[], bool], timeout_s: float = 30) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        assert done(), "condition not reached in time"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def settings_for(topic: str, output: str, **extra: Any) -> SiemSettings:
    return SiemSettings(
        output=output,
        topic=topic,
        group_id=unique("siem-group"),
        poll_timeout_ms=200,
        retry_backoff_initial_s=0.1,
        retry_backoff_max_s=0.5,
        metrics_port=0,
        **extra,
    )


async def test_alert_to_ecs_and_poison_to_dead_letters() -> None:
    bootstrap = require_kafka()
    topic = unique("alerts")
    good = make_finding()
    bad_type_uid = json.loads(finding_json(make_finding()))
    bad_type_uid["type_uid"] = 200409
    await produce(
        bootstrap,
        topic,
        [
            (finding_json(good), message_headers(good)),
            (b"{not json", []),
            (json.dumps(bad_type_uid).encode(), []),
            (finding_json(good), [("minerlens.schema_version", b"2")]),
            (None, []),  # tombstone: skipped, not dead-lettered
            (finding_json(make_finding(activity_id=3)), []),
        ],
    )
    settings = settings_for(topic, "ecs")
    out = io.StringIO()
    metrics = SiemMetrics()
    consumer = AlertConsumer(settings, KafkaSettings(bootstrap=bootstrap), make_output(settings, metrics, stream=out))
    await run_until(consumer, lambda: consumer.committed >= 6)

    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [d["event"]["action"] for d in docs] == ["create", "close"]
    for doc in docs:
        validate_ecs(doc)
    assert consumer.dead_lettered == 3
    assert await committed(bootstrap, settings.consumer_group, topic) == 6

    dlq = await read_all(bootstrap, topics.dead_letter(topic), expect=3)
    assert len(dlq) == 3
    by_reason = {dict(r.headers)["error.reason"].decode(): r for r in dlq}
    assert set(by_reason) == {"invalid_json", "invalid_finding", "unsupported_schema_version"}
    assert by_reason["invalid_json"].value == b"{not json"
    headers = dict(by_reason["invalid_finding"].headers)
    assert headers["source.topic"] == topic.encode()
    assert headers["source.offset"] == b"2"
    assert headers["source.partition"] == b"0"
    assert headers["error.class"] == b"ValidationError"
    assert b"type_uid" in headers["error.msg"]
    assert by_reason["invalid_finding"].key == b"pod-uid"


async def test_stdout_forwards_the_ocsf_json_unchanged() -> None:
    bootstrap = require_kafka()
    topic = unique("alerts")
    raw = finding_json(make_finding())
    await produce(bootstrap, topic, [(raw, [])])
    settings = settings_for(topic, "stdout")
    out = io.StringIO()
    consumer = AlertConsumer(
        settings, KafkaSettings(bootstrap=bootstrap), make_output(settings, SiemMetrics(), stream=out)
    )
    await run_until(consumer, lambda: consumer.committed >= 1)
    assert json.loads(out.getvalue()) == json.loads(raw)


@pytest.mark.slow
async def test_hec_outage_rewinds_and_commits_only_after_delivery(hec: FakeHec) -> None:
    bootstrap = require_kafka()
    topic = unique("alerts")
    await produce(bootstrap, topic, [(finding_json(make_finding(activity_id=a)), []) for a in (1, 2, 3)])
    hec.fail_first = 2  # with hec_max_retries=0 every failure is a failed poll: the consumer must re-read
    settings = settings_for(
        topic,
        "splunk-hec",
        hec_url=hec.url,
        hec_token=TOKEN,
        hec_allow_insecure_http=True,
        hec_max_retries=0,
        hec_flush_interval_s=0.05,
    )
    metrics = SiemMetrics()
    consumer = AlertConsumer(settings, KafkaSettings(bootstrap=bootstrap), make_output(settings, metrics), metrics)
    seen_uncommitted: list[int | None] = []

    def done() -> bool:
        if len(hec.requests) == 2 and not seen_uncommitted:
            seen_uncommitted.append(consumer.committed)
        return consumer.committed >= 3

    await run_until(consumer, done)
    assert seen_uncommitted == [0]  # nothing committed while HEC was failing
    assert len(hec.requests) == 3
    assert all(len(r.events()) == 3 for r in hec.requests)  # the same poll, re-read from Kafka each time
    assert [e["event"]["activity_id"] for e in hec.requests[-1].events()] == [1, 2, 3]
    assert metrics.rewinds._value.get() == 2
    assert metrics.exported.labels(output="splunk-hec")._value.get() == 3
    assert await committed(bootstrap, settings.consumer_group, topic) == 3


async def test_hec_rejected_event_goes_to_the_dead_letter_topic(hec: FakeHec) -> None:
    bootstrap = require_kafka()
    topic = unique("alerts")
    hec.reject_marker = "poisonous-pod"
    await produce(
        bootstrap,
        topic,
        [
            (finding_json(make_finding(pod="fine-pod")), []),
            (finding_json(make_finding(pod="poisonous-pod")), []),
            (finding_json(make_finding(pod="other-pod")), []),
        ],
    )
    settings = settings_for(
        topic, "splunk-hec", hec_url=hec.url, hec_token=TOKEN, hec_allow_insecure_http=True, hec_flush_interval_s=0.05
    )
    consumer = AlertConsumer(settings, KafkaSettings(bootstrap=bootstrap), make_output(settings, SiemMetrics()))
    await run_until(consumer, lambda: consumer.committed >= 3)
    delivered = [e["event"]["resources"][0]["name"] for r in hec.requests for e in r.events()]
    assert delivered == ["fine-pod", "poisonous-pod", "other-pod", "other-pod"]  # batch split after the bad event
    assert consumer.exported == 2
    dlq = await read_all(bootstrap, topics.dead_letter(topic), expect=1)
    assert len(dlq) == 1
    headers = dict(dlq[0].headers)
    assert headers["error.reason"] == b"rejected_by_siem"
    assert b"HTTP 400" in headers["error.msg"]
    assert headers["source.offset"] == b"1"


@pytest.mark.slow
async def test_sigterm_stops_cleanly_after_committing(tmp_path: Any) -> None:
    """The container entry point: SIGTERM ends the poll loop, flushes, commits and exits 0."""
    bootstrap = require_kafka()
    topic = unique("alerts")
    group = unique("siem-group")
    await produce(bootstrap, topic, [(finding_json(make_finding()), [])])
    out = tmp_path / "alerts.ndjson"
    env = {
        **os.environ,
        "MINERLENS_KAFKA_BOOTSTRAP": bootstrap,
        "MINERLENS_SIEM_OUTPUT": "ecs",
        "MINERLENS_SIEM_ECS_PATH": str(out),
        "MINERLENS_SIEM_TOPIC": topic,
        "MINERLENS_SIEM_GROUP_ID": group,
        "MINERLENS_SIEM_METRICS_PORT": "0",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "minerlens_siem", env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        for _ in range(600):
            if out.exists() and out.read_text().strip():
                break
            await asyncio.sleep(0.1)
        assert out.read_text().strip(), "no ECS document written"
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert json.loads(out.read_text())["event"]["kind"] == "alert"
    assert await committed(bootstrap, group, topic) == 1
