"""The Kafka adapter without a broker: what one batch of records turns into, and startup without Kafka."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiokafka import ConsumerRecord
from minerlens_core.schemas.ocsf import decode_finding
from minerlens_core.schemas.windows import FeatureWindow, decode_verdict
from minerlens_core.settings import KafkaSettings
from minerlens_scorer.model_set import ModelSet
from minerlens_scorer.service import ScorerService
from minerlens_scorer.settings import ScorerSettings

from tests.scorer.helpers import trace_windows


def _records(windows: list[FeatureWindow], raw: list[bytes] = ()) -> list[ConsumerRecord]:  # type: ignore[assignment]
    values = [w.model_dump_json().encode() for w in windows] + list(raw)
    return [
        ConsumerRecord("minerlens.windows.v1", 0, i, 0, 0, b"k", v, None, 1, len(v), ()) for i, v in enumerate(values)
    ]


def _service(tmp_path: Path, **kw: object) -> ScorerService:
    settings = ScorerSettings(models_dir=tmp_path, http_port=0, **kw)  # type: ignore[arg-type]
    return ScorerService(settings, KafkaSettings(bootstrap="127.0.0.1:1"))


def test_one_batch_becomes_verdicts_alert_state_and_dead_letters(xgb_set: ModelSet, tmp_path: Path) -> None:
    service = _service(tmp_path)
    service.install(xgb_set)
    miner = trace_windows("miner-randomx-2t-r1", pod_uid="m1", limit=8)
    out = service.handle(_records(miner, [b"\xff\x00garbage"]))
    by_topic: dict[str, list[bytes]] = {}
    for m in out:
        by_topic.setdefault(m.topic, []).append(m.value)
    s = service.settings
    assert len(by_topic[s.verdicts_topic]) == len(miner)
    assert [decode_verdict(v).window_id for v in by_topic[s.verdicts_topic]] == [w.window_id for w in miner]
    (dead,) = [m for m in out if m.topic == s.dead_letter_topic]
    headers = dict(dead.headers)
    assert headers["error.reason"] == b"undecodable feature window"
    assert headers["source.offset"] == str(len(miner)).encode()
    assert headers["source.partition"] == b"0"
    assert dead.value == b"\xff\x00garbage"
    alerts = [decode_finding(v) for v in by_topic[s.alerts_topic]]
    assert alerts[0].activity_name == "Create"
    state = [decode_finding(v) for v in by_topic[s.state_topic]]
    assert len(state) == 1, "one state record per pod and batch"
    assert state[0].finding_info.uid == alerts[0].finding_info.uid
    assert all(m.key == b"m1" for m in out if m.topic in (s.verdicts_topic, s.alerts_topic, s.state_topic))
    # the same batch again (redelivery): verdicts again, nothing else
    again = service.handle(_records(miner))
    assert {m.topic for m in again} == {s.verdicts_topic}
    assert service.metrics.registry.get_sample_value("minerlens_scorer_windows_total", {"outcome": "replay"}) == 8


async def test_starts_without_kafka_and_reports_not_ready(models_dir: Path) -> None:
    service = ScorerService(ScorerSettings(models_dir=models_dir, http_port=0), KafkaSettings(bootstrap="127.0.0.1:1"))
    task = asyncio.create_task(service.run(seconds=4))
    for _ in range(400):
        if service.http_port is not None and service.scorer is not None:
            break
        await asyncio.sleep(0.05)
    async with aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{service.http_port}"
        async with http.get(f"{base}/healthz") as resp:
            assert resp.status == 200
        async with http.get(f"{base}/readyz") as resp:
            assert resp.status == 503
            body = await resp.json()
            assert body["primary"] == "minerlens-xgboost 0.1.0"
            assert body["consuming"] is False
        async with http.get(f"{base}/metrics") as resp:
            assert "minerlens_scorer_model_info" in await resp.text()
    await asyncio.wait_for(task, 30)  # stops at --seconds although Kafka never answered
