"""The SIEM exporter against poison and its own failures, on the real broker:

* undecodable and impossible findings, and findings whose decoding or mapping raises, go to the DLQ with
  their reason and are committed; the good alerts of the same poll are exported; the consumer lives on
  (the raises are simulated by monkeypatching the decoder and the ECS mapping: no real finding makes them
  raise, the bounded contract refuses what used to);
* ``/healthz`` (new, from core's http_probes) answers 200 while it works and 503 with a reason when the
  loop stalls with alerts waiting; ``/readyz`` says whether it serves;
* ``minerlens siem run`` stops on SIGTERM within 10 s with exit status 0, also while its SIEM is down.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from minerlens_core import topics
from minerlens_core.settings import KafkaSettings
from minerlens_siem import consumer as consumer_module
from minerlens_siem import outputs as outputs_module
from minerlens_siem.consumer import AlertConsumer
from minerlens_siem.metrics import SiemMetrics
from minerlens_siem.outputs import make_output
from minerlens_siem.service import run_service

from tests.integration.services import require_kafka
from tests.siem.findings import finding_json, make_finding
from tests.siem.test_consumer_kafka import committed, produce, read_all, run_until, settings_for, unique

pytestmark = pytest.mark.kafka


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_poison_alerts_are_dead_lettered_and_the_poll_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    bootstrap = require_kafka()
    topic = unique("alerts")
    impossible = json.loads(finding_json(make_finding()))
    impossible["time"] = 10**30  # beyond int64 milliseconds
    real_decode, real_ecs = consumer_module.decode_alert, outputs_module.view_to_ecs

    def decode(value: bytes | None, headers: Any = None) -> Any:  # simulated decoder bug
        if value and b"decoder-bomb" in value:
            raise RecursionError("simulated")
        return real_decode(value, headers)

    def ecs(view: Any) -> Any:  # simulated mapping bug
        if view.pod == "mapping-bomb":
            raise KeyError("simulated")
        return real_ecs(view)

    monkeypatch.setattr(consumer_module, "decode_alert", decode)
    monkeypatch.setattr(outputs_module, "view_to_ecs", ecs)
    await produce(
        bootstrap,
        topic,
        [
            (b"\x00\x01 not json", []),
            (json.dumps(impossible).encode(), []),
            (finding_json(make_finding(pod="decoder-bomb")), []),
            (finding_json(make_finding(pod="mapping-bomb")), []),
            (finding_json(make_finding(pod="good-1")), []),
            (finding_json(make_finding(pod="good-2", activity_id=2)), []),
        ],
    )
    settings = settings_for(topic, "ecs")
    out = io.StringIO()
    metrics = SiemMetrics()
    output = make_output(settings, metrics, stream=out)
    consumer = AlertConsumer(settings, KafkaSettings(bootstrap=bootstrap), output, metrics)
    t0 = time.monotonic()
    await run_until(consumer, lambda: consumer.committed >= 6)
    took = time.monotonic() - t0
    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [d["orchestrator"]["resource"]["name"] for d in docs] == ["good-1", "good-2"]
    assert await committed(bootstrap, settings.consumer_group, topic) == 6
    dlq = await read_all(bootstrap, topics.dead_letter(topic), expect=4)
    reasons = Counter(dict(r.headers)["error.reason"].decode() for r in dlq)
    assert reasons == {"invalid_json": 1, "invalid_finding": 1, "internal_error": 1, "mapping_error": 1}, reasons
    by_reason = {dict(r.headers)["error.reason"]: dict(r.headers) for r in dlq}
    assert by_reason[b"internal_error"]["error.class"] == b"RecursionError"
    assert by_reason[b"mapping_error"]["error.class"] == b"KeyError"
    assert by_reason[b"mapping_error"]["source.offset"] == b"3"
    assert metrics.internal_errors._value.get() == 2
    assert consumer.progress.health()["ok"] is True
    print(f"\n2 good alerts exported and 4 poison messages dead-lettered in {took:.2f} s")


async def test_healthz_readyz_and_a_stall_over_http(monkeypatch: pytest.MonkeyPatch) -> None:
    bootstrap = require_kafka()
    topic = unique("alerts")
    port = _free_port()
    settings = settings_for(topic, "ecs", stall_timeout_s=2.0).model_copy(update={"metrics_port": port})
    await produce(bootstrap, topic, [(finding_json(make_finding()), [])])  # the topic exists before it subscribes
    stop, out = asyncio.Event(), io.StringIO()
    task = asyncio.create_task(run_service(settings, KafkaSettings(bootstrap=bootstrap), stop=stop, stream=out))
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    async with http.get(f"{base}/readyz") as r:
                        if r.status == 200 and out.getvalue():  # consuming, and the first alert exported
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline
                assert not task.done()
                await asyncio.sleep(0.1)
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200
                assert (await r.json())["consumer"] == "siem consumer"
            async with http.get(f"{base}/metrics") as r:
                assert "minerlens_siem_alerts_consumed_total" in await r.text()

            async def stuck(self: Any) -> Any:  # simulated: the output never finishes a flush
                await asyncio.Event().wait()

            monkeypatch.setattr(outputs_module.JsonLinesOutput, "flush", stuck)
            await produce(bootstrap, topic, [(finding_json(make_finding()), [])])
            t0 = time.monotonic()
            while True:
                async with http.get(f"{base}/healthz") as r:
                    body = await r.json()
                    if r.status == 503:
                        break
                assert time.monotonic() - t0 < 30, body
                await asyncio.sleep(0.2)
            waited = time.monotonic() - t0
        t1 = time.monotonic()
        stop.set()  # the stuck poll and the output's close are abandoned after shutdown_timeout_s
        await asyncio.wait_for(task, settings.shutdown_timeout_s + 5)
        stopped = time.monotonic() - t1
    finally:
        if not task.done():
            task.cancel()
    assert "no message processed" in body["reason"], body
    assert stopped < settings.shutdown_timeout_s + 2
    print(f"\n/healthz 503 {waited:.1f} s after the alert arrived: {body['reason']}; stopped in {stopped:.1f} s")


def _text(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return str(r.read().decode())
    except (urllib.error.HTTPError, OSError):
        return ""


@pytest.mark.slow
@pytest.mark.parametrize("output", ["stdout", "cef-syslog-down"])
async def test_sigterm_stops_within_10_s(tmp_path: Path, output: str) -> None:
    bootstrap = require_kafka()
    topic = unique("alerts")
    port, dead_port = _free_port(), _free_port()  # nothing listens on dead_port: the SIEM is down
    await produce(bootstrap, topic, [(finding_json(make_finding()), [])])
    env = {
        **os.environ,
        "MINERLENS_KAFKA_BOOTSTRAP": bootstrap,
        "MINERLENS_SIEM_OUTPUT": "stdout" if output == "stdout" else "cef-syslog",
        "MINERLENS_SIEM_SYSLOG_TRANSPORT": "tcp",
        "MINERLENS_SIEM_SYSLOG_PORT": str(dead_port),
        "MINERLENS_SIEM_SYSLOG_TIMEOUT_S": "2",
        "MINERLENS_SIEM_TOPIC": topic,
        "MINERLENS_SIEM_GROUP_ID": unique("siem-group"),
        "MINERLENS_SIEM_METRICS_PORT": str(port),
        "MINERLENS_SIEM_RETRY_BACKOFF_INITIAL_S": "5",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "minerlens_siem", env=env, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        metrics = f"http://127.0.0.1:{port}/metrics"
        while True:
            text = await asyncio.to_thread(_text, metrics)
            if ("minerlens_siem_alerts_exported_total{" in text and output == "stdout") or (
                "minerlens_siem_rewinds_total 1.0" in text
            ):
                break
            assert proc.returncode is None
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 10)
        took = time.monotonic() - t0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    print(f"\nsiem ({output}): exit 0 {took:.2f} s after SIGTERM")
