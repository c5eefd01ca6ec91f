"""The scorer against poison and its own failures, on the real broker:

* undecodable and impossible windows and a window whose scoring raises go to the dead-letter topic with
  their reason, the good windows of the same batch get their verdicts, the service lives on (the raise is
  simulated by monkeypatching ``Scorer.score``: no real window makes it raise);
* ``/healthz`` answers 503 with a reason when the loop stalls with windows waiting;
* ``minerlens scorer run`` stops on SIGTERM within 10 s with exit status 0 (serving, or waiting for a model).
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
from minerlens_core.kafka import make_producer
from minerlens_core.schemas.windows import FeatureWindow, decode_verdict
from minerlens_core.settings import KafkaSettings
from minerlens_scorer.scoring import Scorer

from tests.integration.services import require_kafka
from tests.scorer.helpers import trace_windows
from tests.scorer.test_service_kafka import _settings, _start, _stop, _until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

POISON_UID = "pod-poison-1"


async def _produce(kafka: KafkaSettings, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = make_producer(kafka)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def _raw(w: FeatureWindow) -> tuple[bytes, bytes]:
    return w.envelope.key, w.model_dump_json().encode()


async def test_poison_windows_are_dead_lettered_and_the_batch_goes_on(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka = KafkaSettings(bootstrap=require_kafka())
    suffix = uuid.uuid4().hex[:10]
    settings = _settings(models_dir, suffix, suffix).model_copy(update={"batch_max": 64})
    real_score = Scorer.score

    def score(self: Scorer, windows: Any) -> Any:  # simulated bug: raises on any batch holding the poison pod
        if any(w.envelope.pod and w.envelope.pod.uid == POISON_UID for w in windows):
            raise IndexError("simulated scorer failure")
        return real_score(self, windows)

    monkeypatch.setattr(Scorer, "score", score)
    good = trace_windows("numpy-mlp-r1", pod_uid="pod-good-1", pod="web-0", limit=10)
    miner = trace_windows("miner-randomx-2t-r1", pod_uid="pod-miner-1", pod="miner-0", limit=10)
    poison = trace_windows("gzip-compress-r1", pod_uid=POISON_UID, pod="gzip-0", limit=3)
    impossible = json.loads(good[0].model_dump_json())
    impossible["lost_events"] = 10**100  # beyond int64: refused at decode
    impossible["window_id"] = "impossible"
    messages = [
        (b"x", b"\xff\xfe not json"),
        (b"pod-good-1", json.dumps(impossible).encode()),
        *[_raw(w) for w in poison[:2]],
        *[_raw(w) for pair in zip(good, miner, strict=True) for w in pair],
        _raw(poison[2]),
    ]
    service, task = await _start(settings, kafka)
    try:
        t0 = time.monotonic()
        await _produce(kafka, settings.windows_topic, messages)
        verdicts = await _until(kafka, settings.verdicts_topic, len(good) + len(miner))
        flowed = time.monotonic() - t0
        dlq = await _until(kafka, settings.dead_letter_topic, 2 + len(poison))
        assert not task.done()
        health = service.health()
    finally:
        await _stop(service, task)
    got = {decode_verdict(r.value).window_id for r in verdicts}
    assert got == {w.window_id for w in good + miner}, "every good window of the poisoned batches was scored"
    reasons = Counter(dict(r.headers)["error.reason"].decode() for r in dlq)
    assert reasons == {"undecodable feature window": 2, "scorer error": len(poison)}, reasons
    for r in dlq:
        h = dict(r.headers)
        assert h["source.topic"] == settings.windows_topic.encode()
        if h["error.reason"] == b"scorer error":
            assert r.key == POISON_UID.encode()
            assert h["error.class"] == b"IndexError"
    assert {r.value for r in dlq if r.key == POISON_UID.encode()} == {_raw(w)[1] for w in poison}
    assert health["ok"] is True, health
    assert service.metrics.registry.get_sample_value("minerlens_scorer_internal_errors_total") == len(poison)
    print(f"\n{len(got)} verdicts of the good pods {flowed:.2f} s after the poisoned batches were produced")


async def test_healthz_fails_when_the_loop_stalls(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kafka = KafkaSettings(bootstrap=require_kafka())
    suffix = uuid.uuid4().hex[:10]
    settings = _settings(models_dir, suffix, suffix).model_copy(update={"stall_timeout_s": 2.0})
    service, task = await _start(settings, kafka)

    async def stuck(*_: object) -> None:  # simulated: producing never completes
        await asyncio.Event().wait()

    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{service.http_port}/healthz"
            async with http.get(url) as resp:
                assert resp.status == 200
            monkeypatch.setattr(service, "_send", stuck)
            windows = trace_windows("numpy-mlp-r1", pod_uid="pod-good-1", pod="web-0", limit=3)
            await _produce(kafka, settings.windows_topic, [_raw(w) for w in windows])
            t0 = time.monotonic()
            while True:
                async with http.get(url) as resp:
                    body = await resp.json()
                    if resp.status == 503:
                        break
                assert time.monotonic() - t0 < 30, body
                await asyncio.sleep(0.2)
    finally:
        service.stop()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert body["ok"] is False
    assert "no message processed" in body["reason"], body
    assert body["in_flight"] >= 1, body
    print(f"\n/healthz 503 {time.monotonic() - t0:.1f} s after the windows arrived: {body['reason']}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


@pytest.mark.parametrize("state", ["serving", "waiting for a model"])
def test_sigterm_stops_the_service(tmp_path: Path, models_dir: Path, state: str) -> None:
    bootstrap = require_kafka()
    suffix = uuid.uuid4().hex[:10]
    port = _free_port()
    empty = tmp_path / "no-models"
    empty.mkdir()
    env = {
        **os.environ,
        "MINERLENS_KAFKA_BOOTSTRAP": bootstrap,
        "MINERLENS_SCORER_MODELS_DIR": str(models_dir if state == "serving" else empty),
        "MINERLENS_SCORER_WINDOWS_TOPIC": f"test.windows.{suffix}",
        "MINERLENS_SCORER_VERDICTS_TOPIC": f"test.verdicts.{suffix}",
        "MINERLENS_SCORER_ALERTS_TOPIC": f"test.alerts.{suffix}",
        "MINERLENS_SCORER_GROUP_ID": f"test-scorer-{suffix}",
        "MINERLENS_SCORER_HTTP_PORT": str(port),
    }
    log = tmp_path / "scorer.log"
    with log.open("wb") as f:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("minerlens")), "scorer", "run"], env=env, stdout=f, stderr=f
        )
    try:
        deadline = time.monotonic() + 60
        want = "/readyz" if state == "serving" else "/healthz"
        while _get(port, want) != 200:
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
    print(f"\nscorer ({state}): exit {code} {took:.2f} s after SIGTERM")
