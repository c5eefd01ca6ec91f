"""The collector service's resource sampling round, on a real emulated pod (no broker: the spool holds it)."""

from __future__ import annotations

import asyncio
import os

import pytest
from minerlens_collector.agent.service import Collector
from minerlens_collector.agent.settings import CollectorSettings
from minerlens_collector.events import RawEvents
from minerlens_collector.tools.local_pod import LocalPod
from minerlens_collector.tools.watch import StreamView
from minerlens_core.schemas import ResourceSample, decode_syscall_stream
from minerlens_core.settings import KafkaSettings
from minerlens_core.syscalls import host_arch

from tests.programs import build

pytestmark = pytest.mark.kernel


class IdleSource:
    name = "tracefs"

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def add_pids(self, pids: object) -> None: ...
    def poll(self, timeout_s: float) -> RawEvents:
        return RawEvents.empty()

    def loss_delta(self) -> dict[int, int]:
        return {}


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create cgroups")


async def test_each_container_stream_gets_a_sample_keyed_by_its_pod() -> None:
    prog = build("spin_threads")
    collector = Collector(
        CollectorSettings(http_port=0),
        KafkaSettings(bootstrap="127.0.0.1:1"),
        source=IdleSource(),
        node="n1",
        cluster="c",
        arch=host_arch(),
    )
    view = StreamView()
    with LocalPod("shop", "spin", driver="systemd") as pod:
        sp = pod.spawn([str(prog), "1", "4"])
        collector.reseed()
        targets = collector.sample_targets()
        assert (pod.uid, pod.container_id) in targets
        assert (pod.uid, "") not in targets  # the pod level is the sum of its containers: not sampled twice
        assert await collector.sample_resources() >= 1
        await asyncio.sleep(1.0)
        await collector.sample_resources()
    mine = [decode_syscall_stream(item.value) for item in collector.spool.peek(10_000) if item.key == pod.uid.encode()]
    assert len(mine) == 2
    for m in mine:
        assert isinstance(m, ResourceSample)
        assert m.envelope.container_id == pod.container_id
        assert m.source == "cgroup"
        view.add(m)
    a, b = mine
    assert isinstance(a, ResourceSample)
    assert isinstance(b, ResourceSample)
    assert [p.pid for p in b.sample.processes] == [sp.pid]
    assert b.sample.processes[0].running == 1
    (pv,) = view.pods.values()
    assert pv.samples == 2
    assert pv.cpu_cores is not None
    assert 0.05 < pv.cpu_cores <= 1.05  # one burning thread, on a shared machine
    collector._sync_resource_metrics()
    reg = collector.metrics.registry
    assert (reg.get_sample_value("minerlens_collector_resource_samples_total") or 0) >= 2
    health = collector.health()
    assert isinstance(health["resource_samples"], int)
    assert health["resource_samples"] >= 2
    age = health["last_sample_age_s"]
    assert isinstance(age, float)
    assert age < 5
    assert collector.fd_table is not None
