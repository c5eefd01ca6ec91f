"""The collector against the real kernel and the real Kafka broker.

* round trip: a pod's syscalls, captured live, consumed back from Kafka: nothing lost, nothing
  reordered, sequence numbers contiguous;
* outage: the broker is stopped while batches are produced and started again: the spool resends and
  no batch is lost;
* resource samples: a pod burning CPU is sampled every second; its samples arrive on its batches'
  partition, between its batches;
* replay: the broker is stopped mid-replay and started again: every batch and sample arrives, the
  replay ends without a traceback; with no broker at all it gives up with a clear message.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from aiokafka import ConsumerRecord
from minerlens_collector.agent.publisher import Publisher
from minerlens_collector.agent.service import Collector
from minerlens_collector.agent.settings import CollectorSettings
from minerlens_collector.agent.source import open_source
from minerlens_collector.agent.spool import Outgoing, Spool
from minerlens_collector.tools.local_pod import LocalPod
from minerlens_collector.tools.replay import messages_from_trace, publish
from minerlens_core.kafka import make_consumer
from minerlens_core.schemas import (
    DropReport,
    Envelope,
    PodRef,
    ProcessSample,
    ResourceSample,
    ResourceSnapshot,
    SyscallBatch,
    decode_syscall_stream,
)
from minerlens_core.settings import KafkaSettings
from minerlens_core.syscalls import Arch, host_arch, syscall_number
from minerlens_core.traces import StreamSample, Trace, read_trace, write_trace

from tests.integration.services import require_kafka
from tests.kernel import require_tracefs
from tests.programs import build

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample-v1" / "traces"


async def _consume_records(
    bootstrap: str, topic: str, expect_at_least: int, timeout_s: float = 30
) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = make_consumer(KafkaSettings(bootstrap=bootstrap), topic, group_id=None)
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = await consumer.getmany(timeout_ms=500)
            records += [r for recs in got.values() for r in recs]
            if len(records) >= expect_at_least and not got:
                break
    finally:
        await consumer.stop()
    return records


async def _consume_all(bootstrap: str, topic: str, expect_at_least: int, timeout_s: float = 30) -> list[bytes]:
    return [r.value or b"" for r in await _consume_records(bootstrap, topic, expect_at_least, timeout_s)]


@pytest.mark.kernel
@pytest.mark.kafka
async def test_live_pod_round_trip_through_kafka(tmp_path: Path) -> None:
    require_tracefs()
    bootstrap = require_kafka()
    topic = f"test.syscalls.{uuid.uuid4().hex[:8]}"
    prog = build("getppid_loop")
    n = 300_000
    settings = CollectorSettings(batch_max_events=4096, reseed_interval_s=0.1, http_port=0)
    kafka = KafkaSettings(bootstrap=bootstrap)
    source = open_source("tracefs", instance=f"minerlens-test-{os.getpid()}", buffer_kb=16384)
    collector = Collector(settings, kafka, source=source, node="test-node", cluster="ci", arch=host_arch(), topic=topic)
    with LocalPod("shop", "miner-0") as pod:
        spawned = pod.spawn([str(prog), str(n)], gated=True)
        run = asyncio.create_task(collector.run())
        for _ in range(100):  # wait until the collector's cgroup scan has seeded the gated process
            if spawned.pid in collector._seeded:
                break
            await asyncio.sleep(0.05)
        assert spawned.pid in collector._seeded
        spawned.release()
        await asyncio.to_thread(spawned.proc.wait, 60)
        await asyncio.sleep(0.5)
        collector.stop()
        await asyncio.wait_for(run, 60)
        uid = pod.uid
    assert len(collector.spool) == 0
    values = await _consume_all(bootstrap, topic, collector.publisher.sent_messages)
    msgs = [decode_syscall_stream(v) for v in values]
    batches = [m for m in msgs if isinstance(m, SyscallBatch) and m.envelope.pod and m.envelope.pod.uid == uid]
    drops = [m for m in msgs if isinstance(m, DropReport)]
    assert not [d for d in drops if d.reason == "ring_buffer_overrun"]
    assert [b.seq for b in batches] == list(range(len(batches)))
    getppid = syscall_number("getppid", host_arch())
    assert sum(b.nr.count(getppid) for b in batches) == n
    starts = [b.start_ns for b in batches]
    assert starts == sorted(starts)
    assert all(b.envelope.node == "test-node" and b.envelope.cluster == "ci" for b in batches)
    assert {b.envelope.container_id for b in batches} == {pod.container_id}
    assert any(t.comm.startswith("getppid_loop") for b in batches for t in b.tasks)


def _kafka_sh(port: int, *args: str) -> None:
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(port + 1)}
    subprocess.run(["bash", str(ROOT / "scripts" / "kafka.sh"), *args], check=True, env=env, timeout=180)


@pytest.fixture
def private_broker() -> object:
    """A second broker of our own on other ports, so stopping it does not disturb other tests."""
    require_kafka()  # the same installation must be usable
    port = 29192
    _kafka_sh(port, "start")
    try:
        yield port
    finally:
        _kafka_sh(port, "stop", "--purge")


def _message(i: int) -> Outgoing:
    batch = SyscallBatch(
        envelope=Envelope(node="n1", pod=PodRef(uid="pod-a")),
        source="replay",
        arch=Arch.X86_64,
        seq=i,
        nr=[i % 300] * 10,
        tid=[1] * 10,
    )
    return Outgoing(b"pod-a", batch.model_dump_json().encode(), [], 10, "pod-a")


@pytest.mark.kafka
@pytest.mark.slow
async def test_broker_outage_loses_nothing(private_broker: int) -> None:
    bootstrap = f"127.0.0.1:{private_broker}"
    topic = f"test.outage.{uuid.uuid4().hex[:8]}"
    spool = Spool(max_bytes=64 * 1024 * 1024)
    publisher = Publisher(
        KafkaSettings(bootstrap=bootstrap, request_timeout_ms=3000), topic, spool, max_backoff_s=1, stall_after_s=1
    )
    task = asyncio.create_task(publisher.run())
    total = 300
    try:
        for i in range(100):
            spool.put(_message(i))
        assert await publisher.drain(30)
        await asyncio.to_thread(_kafka_sh, private_broker, "stop")
        for i in range(100, 200):
            spool.put(_message(i))
            await asyncio.sleep(0.01)
        for _ in range(300):
            if publisher.stalls:
                break
            await asyncio.sleep(0.1)
        assert publisher.stalls > 0
        assert not publisher.connected  # the outage is visible (health, metrics)
        assert len(spool) > 0  # nothing could be sent: it waits in the spool
        await asyncio.to_thread(_kafka_sh, private_broker, "start")
        for i in range(200, total):
            spool.put(_message(i))
        assert await publisher.drain(90), f"{len(spool)} messages still spooled"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await publisher.close()
    values = await _consume_all(bootstrap, topic, total)
    seqs = [decode_syscall_stream(v).seq for v in values]  # type: ignore[union-attr]
    # at-least-once: every batch arrived; a resend after the outage may repeat some, in order
    assert set(seqs) == set(range(total))
    first = [s for i, s in enumerate(seqs) if s not in seqs[:i]]
    assert first == list(range(total))
    dup = Counter(seqs)
    assert spool.dropped_messages == 0
    assert max(dup.values()) <= 2


async def test_full_spool_is_reported_not_hidden() -> None:
    """With no broker at all, overflow evicts the oldest batches and the loss becomes a drop report."""
    settings = CollectorSettings(spool_max_bytes=4096, http_port=0)

    class NoSource:
        name = "replay"

        def start(self) -> None: ...
        def stop(self) -> None: ...
        def add_pids(self, pids: object) -> None: ...
        def poll(self, timeout_s: float) -> object: ...
        def loss_delta(self) -> dict[int, int]:
            return {}

    collector = Collector(
        settings,
        KafkaSettings(bootstrap="127.0.0.1:1"),
        source=NoSource(),
        node="n1",
        cluster="c",  # type: ignore[arg-type]
        arch=Arch.X86_64,
    )
    for i in range(50):
        collector._emit(
            [
                SyscallBatch(
                    envelope=Envelope(node="n1", pod=PodRef(uid="pod-a")),
                    source="replay",
                    arch=Arch.X86_64,
                    seq=i,
                    nr=[1] * 20,
                    tid=[1] * 20,
                )
            ]
        )
    assert collector.spool.dropped_events > 0
    collector.report_losses()
    reports = [decode_syscall_stream(x.value) for x in collector.spool.peek(1000)]
    overflow = [r for r in reports if isinstance(r, DropReport) and r.reason == "spool_overflow"]
    assert overflow
    assert overflow[0].envelope.pod is not None
    assert overflow[0].envelope.pod.uid == "pod-a"
    lost_reported = sum(r.lost_events for r in overflow)
    # every evicted event is reported (the reports themselves may evict more, reported next time)
    assert lost_reported <= collector.spool.dropped_events
    assert lost_reported >= 20


@pytest.mark.kernel
@pytest.mark.kafka
async def test_resource_samples_arrive_between_the_pods_batches() -> None:
    require_tracefs()
    bootstrap = require_kafka()
    topic = f"test.resources.{uuid.uuid4().hex[:8]}"
    spin = build("spin_threads")
    settings = CollectorSettings(batch_max_events=4096, reseed_interval_s=0.2, sample_interval_s=1.0, http_port=0)
    source = open_source("tracefs", instance=f"minerlens-test-{os.getpid()}", buffer_kb=4096)
    collector = Collector(
        settings,
        KafkaSettings(bootstrap=bootstrap),
        source=source,
        node="n1",
        cluster="ci",
        arch=host_arch(),
        topic=topic,
    )
    ticker = "import os, time\nend = time.time() + 5\nwhile time.time() < end:\n    os.getppid(); time.sleep(0.002)\n"
    with LocalPod("shop", "burner") as pod:
        spinner = pod.spawn([str(spin), "1", "5"])
        pod.spawn([sys.executable, "-c", ticker])
        run = asyncio.create_task(collector.run())
        await asyncio.sleep(5.5)
        collector.stop()
        await asyncio.wait_for(run, 60)
        uid = pod.uid
    sent = collector.publisher.sent_by_kind.get("resource_sample", 0)
    reg = collector.metrics.registry
    assert reg.get_sample_value("minerlens_collector_resource_samples_sent_total") == sent
    records = await _consume_records(bootstrap, topic, collector.publisher.sent_messages)
    decoded = [(r, decode_syscall_stream(r.value or b"")) for r in records]
    assert sum(isinstance(m, ResourceSample) for _, m in decoded) == sent  # of every pod on this node
    mine = [(r, m) for r, m in decoded if r.key == uid.encode()]
    assert len({r.partition for r, _ in mine}) == 1  # samples and batches share the pod's partition
    mine.sort(key=lambda rm: rm[0].offset)
    kinds = [m.kind for _, m in mine]
    samples = [m for _, m in mine if isinstance(m, ResourceSample)]
    assert len(samples) >= 4
    first_sample, last_sample = kinds.index("resource_sample"), len(kinds) - 1 - kinds[::-1].index("resource_sample")
    assert "syscall_batch" in kinds[:first_sample] or "syscall_batch" in kinds[first_sample:last_sample]
    assert "syscall_batch" in kinds[first_sample + 1 :]  # interleaved, not all at one end
    ts = [m.sample.ts_ns for m in samples]
    assert ts == sorted(ts)
    gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(ts)]
    assert all(0.5 < g < 1.6 for g in gaps), gaps  # one per wall-clock second (the host is shared)
    assert all(m.envelope.container_id == pod.container_id for m in samples)
    burner = [p for m in samples for p in m.sample.processes if p.pid == spinner.pid]
    assert len(burner) >= 3
    assert max(p.running for p in burner) == 1
    assert burner[-1].cpu_ns > burner[0].cpu_ns
    assert samples[-1].sample.cpu_ns is not None
    assert samples[0].sample.cpu_ns is not None
    assert samples[-1].sample.cpu_ns > samples[0].sample.cpu_ns
    batches = [m for _, m in mine if isinstance(m, SyscallBatch)]
    assert batches
    assert all(b.fd_kind is not None and len(b.fd_kind) == len(b.nr) for b in batches)


def _trace_with_samples(tmp_path: Path) -> Trace:
    """A recorded pod (the committed sample) with a resource sample every half second written into it."""
    trace = read_trace(SAMPLE / "zstd-compress-r1.parquet")
    t = trace.table
    ts = t.column("ts_ns").to_numpy()
    uid, cid = t.column("pod_uid")[0].as_py(), t.column("container_id")[0].as_py()
    samples = [
        StreamSample(
            pod_uid=uid,
            container_id=cid,
            sample=ResourceSnapshot(
                ts_ns=int(x),
                cpu_ns=i * 10**8,
                processes=[ProcessSample(pid=7, comm="zstd", cpu_ns=i * 10**8, threads=4, running=1)],
            ),
        )
        for i, x in enumerate(range(int(ts.min()), int(ts.max()), 500_000_000))
    ]
    kinds = pa.array([i % 3 for i in range(t.num_rows)], pa.int8())
    table = t.drop_columns(["fd_kind"]).append_column("fd_kind", kinds) if "fd_kind" in t.schema.names else t
    write_trace(tmp_path / "m.parquet", table, trace.meta, resources=samples)
    return read_trace(tmp_path / "m.parquet")


@pytest.mark.kafka
@pytest.mark.slow
async def test_replay_survives_a_broker_outage(private_broker: int, tmp_path: Path) -> None:
    bootstrap = f"127.0.0.1:{private_broker}"
    topic = f"test.replay.{uuid.uuid4().hex[:8]}"
    trace = _trace_with_samples(tmp_path)
    messages = messages_from_trace(trace, node="n1", max_events=100, start_ns=time.time_ns())
    batches = [m for m in messages if isinstance(m, SyscallBatch)]
    samples = [m for m in messages if isinstance(m, ResourceSample)]
    assert len(batches) > 50
    assert len(samples) > 10
    span_s = (max(m.sample.ts_ns for m in samples) - min(m.sample.ts_ns for m in samples)) / 1e9
    kafka = KafkaSettings(bootstrap=bootstrap, request_timeout_ms=3000)
    replay = asyncio.create_task(
        publish(messages, kafka, topic=topic, speed=span_s / 10, give_up_after_s=120, stall_after_s=1)
    )
    await asyncio.sleep(2.0)  # mid-replay
    assert not replay.done()
    await asyncio.to_thread(_kafka_sh, private_broker, "stop")
    await asyncio.sleep(3.0)
    await asyncio.to_thread(_kafka_sh, private_broker, "start")
    sent = await asyncio.wait_for(replay, 180)
    assert sent == len(messages)
    records = await _consume_records(bootstrap, topic, len(messages), timeout_s=60)
    got = [decode_syscall_stream(r.value or b"") for r in records]
    got_batches = {(b.envelope.key, b.seq) for b in got if isinstance(b, SyscallBatch)}
    assert got_batches == {(b.envelope.key, b.seq) for b in batches}  # nothing lost (a resend may repeat)
    assert {m.sample.ts_ns for m in got if isinstance(m, ResourceSample)} == {m.sample.ts_ns for m in samples}
    first = [b for b in got if isinstance(b, SyscallBatch)]
    seqs = [b.seq for b in first]
    assert [s for i, s in enumerate(seqs) if s not in seqs[:i]] == sorted(set(seqs))  # in order
    assert all(b.fd_kind is not None for b in first)


def test_replay_command_gives_up_cleanly_without_a_broker(tmp_path: Path) -> None:
    env = {**os.environ, "MINERLENS_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    cmd = [str(ROOT / ".venv" / "bin" / "minerlens"), "collector", "replay", str(SAMPLE / "idle-redis-r1.parquet")]
    done = subprocess.run([*cmd, "--give-up-after", "3"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert "replay aborted" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert '"sent": 0' in done.stdout


def test_replay_command_refuses_a_trace_it_cannot_send(tmp_path: Path) -> None:
    trace = read_trace(SAMPLE / "idle-redis-r1.parquet")
    t = trace.table
    bad = t.set_column(t.schema.get_field_index("namespace"), "namespace", pa.array(["A/B"] * t.num_rows))
    write_trace(tmp_path / "bad.parquet", bad, trace.meta)
    env = {**os.environ, "MINERLENS_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    cmd = [str(ROOT / ".venv" / "bin" / "minerlens"), "collector", "replay", str(tmp_path / "bad.parquet")]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert "replay failed" in done.stderr
    assert "namespace" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
