"""The whole streaming pipeline on the real broker: recorded pods replayed the way a collector sends them
-> Kafka -> featurizer (Faust, its own process) -> scorer (ONNX Runtime, its own process) -> verdicts and
OCSF alerts. The miner pod is alerted, the benign pods are not, and every window is accounted for, also
when the featurizer is killed (SIGKILL) mid-stream and a new one takes over."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from minerlens_collector.tools.replay import ReplayPod, batches_from_trace, interleave, publish
from minerlens_core.features import WindowBuilder
from minerlens_core.kafka import make_consumer
from minerlens_core.models import VerifiedManifest
from minerlens_core.schemas.ocsf import decode_finding
from minerlens_core.schemas.windows import decode_verdict
from minerlens_core.settings import KafkaSettings
from minerlens_core.traces import read_trace

from tests.integration.services import kafka_bootstrap, require_kafka

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "traces"  # the 7 Dec lab: traces with their resource samples
MODELS = ROOT / "models"  # the shipped models: default (XGBoost, deciding) and lstm-ae (scored alongside)
MODEL = MODELS / "default"
PODS = {  # trace -> (namespace, name, miner?)
    "miner-randomx-no-yield-r1.parquet": ("crypto", "ci-runner-7", True),  # ~10 syscalls/s on 2 busy cores
    "idle-redis-r1.parquet": ("shop", "cache-0", False),
    "gzip-compress-r1.parquet": ("batch", "compress-0", False),
    "numpy-mlp-r1.parquet": ("ml", "trainer-0", False),
}

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(420)]


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    cli = Path(sys.executable).with_name("minerlens")
    with log.open("wb") as f:
        return subprocess.Popen([str(cli), *args], env={**os.environ, **env}, stdout=f, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _collect(kafka: KafkaSettings, verdicts: str, alerts: str, expected: dict[str, int], timeout_s: float):
    consumer = make_consumer(kafka, verdicts, alerts, group_id=f"e2e-check-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    got: dict[str, list] = defaultdict(list)
    found: list = []
    deadline = time.monotonic() + timeout_s

    async def poll(timeout_ms: int) -> None:
        for tp, recs in (await consumer.getmany(timeout_ms=timeout_ms)).items():
            for r in recs:
                if tp.topic == alerts:
                    found.append(decode_finding(r.value or b""))
                else:
                    v = decode_verdict(r.value or b"")
                    got[v.envelope.pod.uid if v.envelope.pod else ""].append(v)

    try:
        while time.monotonic() < deadline:
            await poll(500)
            if all(len(got[uid]) >= n for uid, n in expected.items()) and found:
                await asyncio.sleep(3)  # anything late (a duplicate) would show up now
                await poll(1000)
                break
    finally:
        await consumer.stop()
    return got, found


def _wait_for_verdicts(kafka: KafkaSettings, topic: str, at_least: int, timeout_s: float = 90.0) -> None:
    """Until the scorer has published ``at_least`` verdicts: the pipeline is mid-stream."""

    async def run() -> None:
        consumer = make_consumer(kafka, topic, group_id=None)
        await consumer.start()
        seen, deadline = 0, time.monotonic() + timeout_s
        try:
            while seen < at_least:
                assert time.monotonic() < deadline, f"only {seen} verdicts after {timeout_s} s"
                seen += sum(len(r) for r in (await consumer.getmany(timeout_ms=500)).values())
        finally:
            await consumer.stop()

    asyncio.run(run())


@pytest.mark.parametrize("featurizer_killed", [False, True], ids=["steady", "featurizer-killed"])
def test_replayed_pods_flow_to_verdicts_and_one_alert_for_the_miner(tmp_path: Path, featurizer_killed: bool) -> None:
    require_kafka()
    assert (MODEL / "manifest.json").is_file(), "the shipped default model is missing (models/default)"
    spec = VerifiedManifest(MODEL).spec
    run = uuid.uuid4().hex[:8]
    t = {k: f"e2e-{run}.{k}" for k in ("syscalls", "windows", "verdicts", "alerts")}
    env = {
        "MINERLENS_KAFKA_BOOTSTRAP": kafka_bootstrap(),
        "MINERLENS_FEATURIZER_APP_ID": f"e2e-featurizer-{run}",
        "MINERLENS_FEATURIZER_INPUT_TOPIC": t["syscalls"],
        "MINERLENS_FEATURIZER_OUTPUT_TOPIC": t["windows"],
        "MINERLENS_FEATURIZER_MODEL_DIR": str(MODEL),
        "MINERLENS_FEATURIZER_DATA_DIR": str(tmp_path / "featurizer"),
        "MINERLENS_FEATURIZER_IDLE_TIMEOUT_S": "8",
        "MINERLENS_FEATURIZER_WEB_PORT": "0",
        "MINERLENS_FEATURIZER_STANDBY_REPLICAS": "0",
        "MINERLENS_FEATURIZER_SESSION_TIMEOUT_S": "6",  # a killed featurizer's partitions move on quickly
        "MINERLENS_SCORER_MODELS_DIR": str(MODELS),
        "MINERLENS_SCORER_WINDOWS_TOPIC": t["windows"],
        "MINERLENS_SCORER_VERDICTS_TOPIC": t["verdicts"],
        "MINERLENS_SCORER_ALERTS_TOPIC": t["alerts"],
        "MINERLENS_SCORER_GROUP_ID": f"e2e-scorer-{run}",
        "MINERLENS_SCORER_HTTP_PORT": "0",
    }
    start_ns = time.time_ns()
    streams, expected, miner_uid = [], {}, ""
    for file, (ns, name, is_miner) in PODS.items():
        uid = str(uuid.uuid4())
        batches = batches_from_trace(
            read_trace(SAMPLE / file), node=f"e2e-node-{run}", pod=ReplayPod(uid, ns, name), start_ns=start_ns
        )
        builder = WindowBuilder(spec.window)  # what the featurizer must emit for these batches
        expected[uid] = sum(len(builder.add(b)) for b in batches) + len(builder.flush())
        streams.append(batches)
        miner_uid = uid if is_miner else miner_uid

    featurizer = _start(["featurizer", "run"], env, tmp_path / "featurizer.log")
    scorer = _start(["scorer", "run"], env, tmp_path / "scorer.log")
    kafka = KafkaSettings(bootstrap=kafka_bootstrap())
    batches = interleave(streams)
    try:
        time.sleep(10)  # both consumer groups join before data arrives (they would read from earliest anyway)
        assert featurizer.poll() is None, (tmp_path / "featurizer.log").read_text()[-3000:]
        assert scorer.poll() is None, (tmp_path / "scorer.log").read_text()[-3000:]
        if featurizer_killed:
            half = len(batches) // 2
            sent = asyncio.run(publish(batches[:half], kafka, topic=t["syscalls"]))
            _wait_for_verdicts(kafka, t["verdicts"], at_least=10)
            featurizer.kill()  # mid-stream: no flush, no leave-group; its partitions move after the session timeout
            featurizer.wait()
            sent += asyncio.run(publish(batches[half:], kafka, topic=t["syscalls"]))
            featurizer = _start(["featurizer", "run"], env, tmp_path / "featurizer-2.log")
        else:
            sent = asyncio.run(publish(batches, kafka, topic=t["syscalls"]))
        assert sent == len(batches)
        got, findings = asyncio.run(_collect(kafka, t["verdicts"], t["alerts"], expected, timeout_s=180))
    finally:
        _stop(featurizer)
        _stop(scorer)
    last_featurizer = "featurizer-2.log" if featurizer_killed else "featurizer.log"
    logs = (
        f"\n--- featurizer:\n{(tmp_path / last_featurizer).read_text()[-2000:]}\n--- scorer:\n"
        + (tmp_path / "scorer.log").read_text()[-2000:]
    )

    # every window accounted for: exactly the windows the feature library cuts, each scored once; after a
    # crash a window the dead featurizer had delivered may be emitted again, byte-identical: same verdict
    for uid, n in expected.items():
        ids = Counter(v.window_id for v in got[uid])
        assert len(ids) == n, f"pod {uid}: {len(ids)} distinct windows scored, expected {n}{logs}"
        if not featurizer_killed:
            assert max(ids.values()) == 1, f"pod {uid}: a window was scored twice{logs}"
        by_id: dict[str, set[tuple[str, float]]] = defaultdict(set)
        for v in got[uid]:
            by_id[v.window_id].add((v.decision, v.score))
        assert all(len(x) == 1 for x in by_id.values()), f"pod {uid}: a window got two different verdicts{logs}"
    # the miner pod is alerted, once; no benign pod is
    alerted = {f.pod.uid for f in findings if f.pod is not None}
    assert alerted == {miner_uid}, f"alerted pods {alerted}, expected only the miner {miner_uid}{logs}"
    opened = [f for f in findings if f.activity_id == 1]
    assert len({f.alert_id for f in opened}) == 1, "one alert for the miner pod"
    first = opened[0]
    assert first.pod is not None
    assert (first.pod.namespace, first.pod.name) == ("crypto", "ci-runner-7")
    assert first.finding_info.analytic.type_id == 4
    assert first.unmapped["minerlens"]["reasons"], "the alert says why"
    scored = [v for vs in got.values() for v in vs if v.decision != "insufficient_data"]
    assert scored
    assert all({s.model.name for s in v.scores} == {"minerlens-xgboost", "minerlens-lstm-ae"} for v in scored), (
        "every scored window carries both shipped models' scores"
    )
    assert all(v.model.name == "minerlens-xgboost" for v in scored), "XGBoost decides"
    miner_verdicts = got[miner_uid]
    assert sum(v.decision == "miner" for v in miner_verdicts) >= 0.5 * len(miner_verdicts)
    for uid in set(expected) - {miner_uid}:
        flagged = sum(v.decision == "miner" for v in got[uid])
        assert flagged < 3, f"benign pod {uid}: {flagged} windows over the threshold"
