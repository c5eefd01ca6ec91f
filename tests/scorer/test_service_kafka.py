"""The scorer service on the real broker: windows in -> verdicts + one alert out; replays and restarts
raise no second alert; poison messages go to the dead-letter topic; HTTP health and metrics."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import aiohttp
import pytest
from aiokafka import ConsumerRecord
from minerlens_core.features import FeatureSpec, WindowPolicy
from minerlens_core.kafka import make_consumer, make_producer, message_headers
from minerlens_core.schemas.ocsf import decode_finding
from minerlens_core.schemas.windows import FeatureWindow, decode_verdict
from minerlens_core.settings import KafkaSettings
from minerlens_scorer.service import ScorerService
from minerlens_scorer.settings import ScorerSettings

from tests.integration.services import require_kafka
from tests.scorer.helpers import trace_windows

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

MINER_UID, BENIGN_UID = "pod-miner-1", "pod-benign-1"


async def _produce(kafka: KafkaSettings, topic: str, windows: list[FeatureWindow], raw: list[bytes] = ()) -> None:  # type: ignore[assignment]
    producer = make_producer(kafka)
    await producer.start()
    try:
        for w in windows:
            value = w.model_dump_json().encode()
            await producer.send_and_wait(topic, value, key=w.envelope.key, headers=message_headers(w))
        for value in raw:
            await producer.send_and_wait(topic, value, key=MINER_UID.encode())
    finally:
        await producer.stop()


async def _read(kafka: KafkaSettings, topic: str) -> list[ConsumerRecord]:
    """Everything in ``topic`` now (from the beginning until a quiet poll)."""
    consumer = make_consumer(kafka, topic, group_id=None)
    await consumer.start()
    out: list[ConsumerRecord] = []
    try:
        idle = 0
        while idle < 2:
            got = await consumer.getmany(timeout_ms=500)
            new = [r for recs in got.values() for r in recs]
            out += new
            idle = 0 if new else idle + 1
    finally:
        await consumer.stop()
    return out


async def _until(kafka: KafkaSettings, topic: str, n: int, timeout_s: float = 60) -> list[ConsumerRecord]:
    deadline = time.monotonic() + timeout_s
    while True:
        recs = await _read(kafka, topic)
        if len(recs) >= n or time.monotonic() > deadline:
            return recs
        await asyncio.sleep(0.5)


def _settings(models_dir: Path, suffix: str, group: str) -> ScorerSettings:
    return ScorerSettings(
        models_dir=models_dir,
        windows_topic=f"test.windows.{suffix}",
        verdicts_topic=f"test.verdicts.{suffix}",
        alerts_topic=f"test.alerts.{suffix}",
        suppressions_topic=f"test.suppressions.{suffix}",  # never the shared broker's real rules
        group_id=f"test-scorer-{group}",
        http_port=0,
        reload_interval_s=0.5,
        poll_timeout_ms=100,
        quiet_timeout_s=3600,
    )


async def _start(settings: ScorerSettings, kafka: KafkaSettings) -> tuple[ScorerService, asyncio.Task[None]]:
    service = ScorerService(settings, kafka)
    task = asyncio.create_task(service.run())
    deadline = time.monotonic() + 60
    while not service.ready()["ok"]:
        assert time.monotonic() < deadline, service.ready()
        assert not task.done(), task
        await asyncio.sleep(0.1)
    return service, task


async def _stop(service: ScorerService, task: asyncio.Task[None]) -> None:
    service.stop()
    await asyncio.wait_for(task, 30)


async def test_windows_to_verdicts_and_one_alert_replay_restart_dlq(models_dir: Path) -> None:
    kafka = KafkaSettings(bootstrap=require_kafka())
    suffix = uuid.uuid4().hex[:10]
    settings = _settings(models_dir, suffix, suffix)
    miner = trace_windows("miner-randomx-2t-r1", pod_uid=MINER_UID, pod="miner-0", limit=12)
    benign = trace_windows("numpy-mlp-r1", pod_uid=BENIGN_UID, pod="web-0")
    wrong_spec = trace_windows(
        "numpy-mlp-r1", pod_uid=BENIGN_UID, spec=FeatureSpec.build(window=WindowPolicy.count(500)), limit=1
    )
    poison = [b"not json at all", b'{"kind": "feature_window", "window_id": ""}']
    await _produce(kafka, settings.windows_topic, miner + benign + wrong_spec, poison)
    n_windows = len(miner) + len(benign)

    service, task = await _start(settings, kafka)
    try:
        verdict_recs = await _until(kafka, settings.verdicts_topic, n_windows)
        assert len(verdict_recs) == n_windows, "one verdict per window, every window accounted for"
        verdicts = [decode_verdict(r.value) for r in verdict_recs]
        assert {v.window_id for v in verdicts} == {w.window_id for w in miner + benign}
        assert all(r.key == v.envelope.key for r, v in zip(verdict_recs, verdicts, strict=True))
        assert all(v.model.name == "minerlens-xgboost" and v.model.version == "0.1.0" for v in verdicts)

        dlq = await _until(kafka, settings.dead_letter_topic, 3)
        reasons = sorted(dict(r.headers)["error.reason"].decode() for r in dlq)
        assert reasons == ["feature spec mismatch", "undecodable feature window", "undecodable feature window"]
        for r in dlq:
            h = dict(r.headers)
            assert h["source.topic"].decode() == settings.windows_topic
            assert int(h["source.offset"]) >= 0
            assert int(h["source.partition"]) >= 0
            assert "error.class" in h
            assert "error.msg" in h
        assert dict(dlq[0].headers)
        assert {r.value for r in dlq} >= set(poison)

        alert_recs = await _until(kafka, settings.alerts_topic, 1)
        findings = [decode_finding(r.value) for r in alert_recs]
        assert next(f.activity_name for f in findings) == "Create"
        assert {f.activity_name for f in findings} <= {"Create", "Update"}
        assert {f.finding_info.uid for f in findings} == {findings[0].finding_info.uid}, "one alert for the pod"
        assert {r.key for r in alert_recs} == {MINER_UID.encode()}
        m = findings[0].unmapped["minerlens"]
        assert m["pod"] == "miner-0"
        assert m["namespace"] == "shop"
        assert m["model"]["version"] == "0.1.0"
        assert m["explain_path"].startswith("/v1/pods/shop/miner-0/explanation?window=")

        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{service.http_port}"
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 200
                body = await resp.json()
                assert body["primary"] == "minerlens-xgboost 0.1.0"
                assert body["open_alerts"] == 1
            async with http.get(f"{base}/healthz") as resp:
                assert resp.status == 200
            async with http.get(f"{base}/metrics") as resp:
                text = await resp.text()
                assert 'minerlens_scorer_alert_events_total{activity="Create"} 1.0' in text
                assert 'minerlens_scorer_dead_letters_total{reason="feature spec mismatch"} 1.0' in text

        # replay while running: the featurizer re-emits the miner's windows
        await _produce(kafka, settings.windows_topic, miner)
        assert len(await _until(kafka, settings.verdicts_topic, n_windows + len(miner))) == n_windows + len(miner)
        await asyncio.sleep(1.0)
        assert len(await _read(kafka, settings.alerts_topic)) == len(alert_recs), "a replay raises nothing"
    finally:
        await _stop(service, task)

    # restart with a consumer group that re-reads the whole topic: everything is a replay
    again = _settings(models_dir, suffix, f"{suffix}-restarted")
    service, task = await _start(again, kafka)
    try:
        assert service.ready()["open_alerts"] == 1, "the open alert was rebuilt from the alerts topic"
        total = 2 * (n_windows + len(miner))  # the restarted group re-reads every window, replay included
        assert len(await _until(kafka, settings.verdicts_topic, total)) == total
        await asyncio.sleep(1.0)
        after = [decode_finding(r.value) for r in await _read(kafka, settings.alerts_topic)]
        assert [f.activity_name for f in after] == [f.activity_name for f in findings], "nothing new after restart"
        # the restarted scorer continues the same alert with new windows
        more = trace_windows("miner-randomx-2t-r1", pod_uid=MINER_UID, pod="miner-0", limit=30)[12:]
        await _produce(kafka, settings.windows_topic, more)
        final = await _until(kafka, settings.alerts_topic, len(after) + 1, timeout_s=30)
        findings = [decode_finding(r.value) for r in final]
        assert [f.activity_name for f in findings].count("Create") == 1
        assert {f.finding_info.uid for f in findings} == {after[0].finding_info.uid}
    finally:
        await _stop(service, task)


async def test_waits_for_a_model_then_serves(tmp_path: Path, models_dir: Path) -> None:
    """No artifact yet (training still running): not ready; an artifact appears: it serves."""
    import shutil

    kafka = KafkaSettings(bootstrap=require_kafka())
    suffix = uuid.uuid4().hex[:10]
    empty = tmp_path / "empty-models"
    empty.mkdir()
    settings = _settings(empty, suffix, suffix)
    service = ScorerService(settings, kafka)
    task = asyncio.create_task(service.run())
    try:
        await asyncio.sleep(1.5)
        assert not service.ready()["ok"]
        assert service.scorer is None
        shutil.copytree(models_dir / "xgboost-time1s", empty / "xgboost-time1s")
        deadline = time.monotonic() + 60
        while not service.ready()["ok"]:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        await _produce(kafka, settings.windows_topic, trace_windows("numpy-mlp-r1", pod_uid=BENIGN_UID, limit=3))
        assert len(await _until(kafka, settings.verdicts_topic, 3)) == 3
    finally:
        await _stop(service, task)
