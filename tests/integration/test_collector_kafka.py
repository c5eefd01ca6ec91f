"""The collector against the real kernel and the real Kafka broker.

* round trip: a pod's syscalls, captured live, consumed back from Kafka: nothing lost, nothing
  reordered, sequence numbers contiguous;
* outage: the broker is stopped while batches are produced and started again: the spool resends and
  no batch is lost.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from minerlens_collector.local_pod import LocalPod
from minerlens_collector.publisher import Publisher
from minerlens_collector.service import Collector
from minerlens_collector.settings import CollectorSettings
from minerlens_collector.source import open_source
from minerlens_collector.spool import Outgoing, Spool
from minerlens_core.kafka import make_consumer
from minerlens_core.schemas import DropReport, Envelope, PodRef, SyscallBatch, decode_syscall_stream
from minerlens_core.settings import KafkaSettings
from minerlens_core.syscalls import Arch, host_arch, syscall_number

from tests.integration.services import require_kafka
from tests.kernel import require_tracefs
from tests.programs import build

ROOT = Path(__file__).resolve().parents[2]


async def _consume_all(bootstrap: str, topic: str, expect_at_least: int, timeout_s: float = 30) -> list[bytes]:
    consumer = make_consumer(KafkaSettings(bootstrap=bootstrap), topic, group_id=None)
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = await consumer.getmany(timeout_ms=500)
            values += [r.value or b"" for recs in got.values() for r in recs]
            if len(values) >= expect_at_least and not got:
                break
    finally:
        await consumer.stop()
    return values


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
