"""The collector's HTTP port: Prometheus metrics and a health document that tells Kafka trouble."""

from __future__ import annotations

import aiohttp
from minerlens_collector.agent.service import Collector
from minerlens_collector.agent.settings import CollectorSettings
from minerlens_collector.events import RawEvents
from minerlens_core.http_probes import probe_app, serve
from minerlens_core.schemas import Envelope, PodRef, SyscallBatch
from minerlens_core.settings import KafkaSettings
from minerlens_core.syscalls import Arch


class IdleSource:
    name = "replay"

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def add_pids(self, pids: object) -> None: ...
    def poll(self, timeout_s: float) -> RawEvents:
        return RawEvents.empty()

    def loss_delta(self) -> dict[int, int]:
        return {3: 12}


async def test_metrics_and_health_report_state() -> None:
    collector = Collector(
        CollectorSettings(http_port=0),
        KafkaSettings(bootstrap="127.0.0.1:1"),
        source=IdleSource(),
        node="n1",
        cluster="c",
        arch=Arch.X86_64,
    )
    batch = SyscallBatch(
        envelope=Envelope(node="n1", pod=PodRef(uid="p1")),
        source="replay",
        arch=Arch.X86_64,
        seq=0,
        nr=[1, 2],
        tid=[5, 5],
    )
    collector._emit([batch])
    collector.report_losses()  # the source says CPU 3 lost 12 events
    collector._sync_publisher_metrics()
    runner, port = await serve(probe_app(collector.metrics.registry, collector.health), "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                text = await r.text()
                assert r.status == 200
            async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                health = await r.json()
                assert r.status == 200
    finally:
        await runner.cleanup()
    assert 'minerlens_collector_events_lost_total{reason="ring_buffer_overrun"} 12.0' in text
    assert "minerlens_collector_batches_total 1.0" in text
    assert "minerlens_collector_spool_messages 2.0" in text  # the batch and the drop report wait for Kafka
    assert health["kafka_connected"] is False
    assert health["spool_messages"] == 2
    assert health["source"] == "replay"
