"""The collector service on the eBPF source, and ``auto``'s choice with its reason (live kernel)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from minerlens_collector.agent.service import Collector
from minerlens_collector.agent.settings import CollectorSettings
from minerlens_collector.agent.source import choose_source
from minerlens_collector.tools.local_pod import LocalPod
from minerlens_core.schemas.aggregates import SyscallAggregate
from minerlens_core.settings import KafkaSettings
from minerlens_core.syscalls import host_arch, syscall_number

from tests.collector.test_ebpf_source_live import CGROUP_ROOT, _kernel_can_load_bpf  # noqa: F401  (skip/fail rule)
from tests.programs import build

pytestmark = [pytest.mark.kernel]
GETPPID = syscall_number("getppid", host_arch())


def test_auto_prefers_ebpf_where_the_kernel_loads_it() -> None:
    choice = choose_source("auto", instance="mltest-auto", buffer_kb=64, ebpf_in_auto=True)
    try:
        assert choice.source.name == "ebpf"
        assert "loads the eBPF program" in choice.reason
    finally:
        choice.source.stop()


def test_auto_says_why_it_passed_over_ebpf(tmp_path: Path) -> None:
    no_v2 = choose_source("auto", instance="mltest-auto", buffer_kb=64, cgroup_root=tmp_path, ebpf_in_auto=True)
    assert no_v2.source.name in {"tracefs", "strace"}
    assert "eBPF unusable" in no_v2.reason
    assert "cgroup2" in no_v2.reason
    default = choose_source("auto", instance="mltest-auto", buffer_kb=64)
    assert default.source.name in {"tracefs", "strace"}
    assert "eBPF not tried" in default.reason


async def test_collector_on_ebpf_counts_pods_without_seeding_pids() -> None:
    n = 300_000
    choice = choose_source("ebpf", instance="unused", buffer_kb=64, cgroup_root=CGROUP_ROOT)
    settings = CollectorSettings(http_port=0, sample_interval_s=0, aggregate_interval_s=0.2, reseed_interval_s=0.2)
    collector = Collector(
        settings,
        KafkaSettings(bootstrap="127.0.0.1:1"),
        source=choice.source,
        source_reason=choice.reason,
        node="n1",
        cluster="c",
        arch=host_arch(),
    )
    with LocalPod("ebpf", "service") as pod:
        run = asyncio.create_task(collector.run())
        await asyncio.sleep(0.6)  # a scan has put the pod's cgroups into the kernel's filter
        sp = pod.spawn([str(build("getppid_loop")), str(n), "1"])
        assert await asyncio.to_thread(sp.proc.wait, 60) == 0
        await asyncio.sleep(0.6)  # the window holding the calls has been read
        health = collector.health()
        sent = _take_spooled(collector)  # what Kafka would get (the broker here is unreachable)
        collector.stop()
        await asyncio.wait_for(run, 30)
    assert health["source"] == "ebpf"
    assert health["source_reason"] == "requested"
    agg = health["aggregates"]
    assert isinstance(agg, dict)
    assert agg["events"] >= n
    assert agg["windows"] >= 3
    assert agg["lost"] == {}
    assert health["traced_tasks"] == 0  # no pid was seeded: the filter is the cgroup map
    text = collector.metrics.registry.get_sample_value(
        "minerlens_collector_source", {"source": "ebpf", "reason": "requested"}
    )
    assert text == 1.0
    assert (collector.metrics.registry.get_sample_value("minerlens_collector_events_captured_total") or 0) >= n
    mine = [m for m in sent if m.envelope.pod is not None and m.envelope.pod.uid == pod.uid]
    assert mine
    assert all(m.envelope.container_id == pod.container_id for m in mine)
    assert [m.seq for m in mine] == list(range(len(mine)))  # one message per window, contiguous
    calls = sum(n for m in mine for nr, n in zip(m.counts.nr, m.counts.n, strict=True) if nr == GETPPID)
    assert calls == n  # exact, across however many windows the run spanned
    assert any(t.comm.startswith("getppid_loop") for m in mine for t in m.tasks)  # names from /proc


def _take_spooled(collector: Collector) -> list[SyscallAggregate]:
    items = collector.spool.peek(len(collector.spool))
    for item in items:
        collector.spool.pop(item)
    return [SyscallAggregate.model_validate_json(i.value) for i in items if i.kind == "syscall_aggregate"]
