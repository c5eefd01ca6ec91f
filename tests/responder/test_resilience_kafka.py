"""The responder against poison and its own failures, on the real broker:

* undecodable and impossible alerts, an alert whose decoding raises something else than a validation
  error, and one whose decision raises go to the DLQ with their reason and are committed; the good alerts
  of the same poll are audited; the service lives on (both raises are simulated by monkeypatching: no
  real alert makes them raise);
* ``/healthz`` answers 503 with a reason when the loop stalls with alerts waiting;
* ``minerlens responder run`` stops on SIGTERM within 10 s with exit status 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from minerlens_core import topics
from minerlens_core.kafka import make_producer
from minerlens_core.settings import KafkaSettings
from minerlens_responder import service as service_module
from minerlens_responder.audit import decode_audit
from minerlens_responder.responder import Responder
from minerlens_responder.service import ResponderService

from tests.integration.services import require_kafka
from tests.responder.alerts import make_finding
from tests.responder.test_service_kafka import POLICY, _alerts, _consume, _settings

pytestmark = [pytest.mark.kafka]


async def _produce(kafka: KafkaSettings, topic: str, values: list[bytes]) -> None:
    producer = make_producer(kafka)
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(topic, v, key=b"pod", partition=0)
    finally:
        await producer.stop()


async def test_poison_alerts_are_dead_lettered_and_the_poll_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    kafka = KafkaSettings(bootstrap=require_kafka())
    suffix = uuid.uuid4().hex[:10]
    settings = _settings(suffix)
    real_decode, real_handle = service_module.decode_finding, Responder.handle

    def decode(raw: Any) -> Any:  # simulated decoder bug
        if b"al-recursion" in (raw if isinstance(raw, bytes) else raw.encode()):
            raise RecursionError("simulated")
        return real_decode(raw)

    async def handle(self: Responder, finding: Any) -> Any:  # simulated responder bug
        if finding.alert_id == "al-bomb":
            raise KeyError("simulated")
        return await real_handle(self, finding)

    monkeypatch.setattr(service_module, "decode_finding", decode)
    monkeypatch.setattr(Responder, "handle", handle)
    impossible = json.loads(make_finding(alert_id="al-impossible").model_dump_json())
    impossible["time"] = 10**30
    good = [make_finding(alert_id=f"al-good-{i}") for i in range(3)]
    await _produce(
        kafka,
        settings.alerts_topic,
        [
            b"\xff\xfe",
            json.dumps(impossible).encode(),
            make_finding(alert_id="al-recursion").model_dump_json().encode(),
            good[0].model_dump_json().encode(),
            make_finding(alert_id="al-bomb").model_dump_json().encode(),
            *[g.model_dump_json().encode() for g in good[1:]],
        ],
    )
    service = ResponderService(Responder(POLICY, own_namespace="minerlens"), settings, kafka)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop=stop))
    t0 = time.monotonic()
    try:
        audit = await _consume(kafka, settings.audit_topic, len(good))
        took = time.monotonic() - t0
        dlq = await _consume_records(kafka, topics.dead_letter(settings.alerts_topic), 4)
        for _ in range(100):
            if _alerts(service) >= 7:
                break
            await asyncio.sleep(0.1)
        assert not task.done()
        health = service.health()
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    assert sorted(decode_audit(v).alert_id for _, v in audit) == [g.alert_id for g in good]
    reasons = Counter(dict(r.headers)["error.reason"].decode() for r in dlq)
    assert reasons == {"undecodable alert": 3, "responder error": 1}, reasons
    classes = sorted(dict(r.headers)["error.class"].decode() for r in dlq if "error.class" in dict(r.headers))
    assert "RecursionError" in classes
    assert "KeyError" in classes
    assert all(dict(r.headers)["source.partition"] == b"0" for r in dlq)
    assert health["ok"] is True, health
    again = ResponderService(Responder(POLICY), settings, kafka)  # committed: nothing is read twice
    await again.run(seconds=3.0)
    assert _alerts(again) == 0
    print(f"\n{len(good)} good alerts audited and 4 poison messages dead-lettered in {took:.2f} s")


async def _consume_records(kafka: KafkaSettings, topic: str, n: int) -> list[Any]:
    from minerlens_core.kafka import make_consumer

    consumer = make_consumer(kafka, topic, group_id=None)
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + 30
        while len(out) < n and time.monotonic() < deadline:
            got = await consumer.getmany(timeout_ms=300)
            out += [r for recs in got.values() for r in recs]
    finally:
        await consumer.stop()
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_healthz_fails_when_the_loop_stalls(monkeypatch: pytest.MonkeyPatch) -> None:
    kafka = KafkaSettings(bootstrap=require_kafka())
    suffix = uuid.uuid4().hex[:10]
    port = _free_port()
    settings = _settings(suffix).model_copy(update={"stall_timeout_s": 2.0, "http_port": port})
    await _produce(kafka, settings.alerts_topic, [make_finding(alert_id="al-first").model_dump_json().encode()])
    service = ResponderService(Responder(POLICY, own_namespace="minerlens"), settings, kafka)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop=stop))
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            while _alerts(service) < 1:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            async with http.get(f"{url}/healthz") as r:
                assert r.status == 200
            async with http.get(f"{url}/readyz") as r:
                assert r.status == 200

            async def stuck(self: Responder, finding: Any) -> Any:  # simulated: a decision that never ends
                await asyncio.Event().wait()

            monkeypatch.setattr(Responder, "handle", stuck)
            await _produce(kafka, settings.alerts_topic, [make_finding(alert_id="al-stuck").model_dump_json().encode()])
            t0 = time.monotonic()
            while True:
                async with http.get(f"{url}/healthz") as r:
                    body = await r.json()
                    if r.status == 503:
                        break
                assert time.monotonic() - t0 < 30, body
                await asyncio.sleep(0.2)
            waited = time.monotonic() - t0
        t1 = time.monotonic()
        stop.set()  # the stuck decision is abandoned after the shutdown grace
        await asyncio.wait_for(task, 15)
        stopped = time.monotonic() - t1
    finally:
        if not task.done():
            task.cancel()
    assert "no message processed" in body["reason"], body
    assert stopped < service_module.SHUTDOWN_GRACE_S + 2
    print(f"\n/healthz 503 {waited:.1f} s after the alert arrived: {body['reason']}; stopped in {stopped:.1f} s")


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def test_sigterm_stops_the_service(tmp_path: Path) -> None:
    bootstrap = require_kafka()
    suffix = uuid.uuid4().hex[:10]
    port = _free_port()
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - name: high\n    match: {min_severity: High}\n    actions: [annotate]\n")
    env = {
        **os.environ,
        "MINERLENS_KAFKA_BOOTSTRAP": bootstrap,
        "MINERLENS_RESPONDER_ALERTS_TOPIC": f"test.alerts.{suffix}",
        "MINERLENS_RESPONDER_AUDIT_TOPIC": f"test.audit.{suffix}",
        "MINERLENS_RESPONDER_GROUP_ID": f"test-responder-{suffix}",
        "MINERLENS_RESPONDER_HTTP_PORT": str(port),
    }
    log = tmp_path / "responder.log"
    cli = str(Path(sys.executable).with_name("minerlens"))
    with log.open("wb") as f:
        proc = subprocess.Popen([cli, "responder", "run", "--policy", str(policy)], env=env, stdout=f, stderr=f)
    try:
        deadline = time.monotonic() + 60
        while _get(f"http://127.0.0.1:{port}/readyz") != 200:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, log.read_text()
    print(f"\nresponder: exit {code} {took:.2f} s after SIGTERM")
