"""Parity: one workload captured both ways at once — tracefs (every raw event) and the eBPF source (in-kernel
aggregates, published as ``SyscallAggregate``) — gives the same counts and n-grams, exactly.

The reference for the raw side is ``minerlens_core.features.aggregates.aggregate_events``: what a featurizer
computes from raw batches. Sampled sequences aside (they are a sample by design).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from minerlens_collector.agent.discovery import scan_pods
from minerlens_collector.agent.ebpf import EbpfSource
from minerlens_collector.agent.ebpf.messages import AggregateMessages
from minerlens_collector.agent.tracefs import TracefsSource, is_available
from minerlens_collector.events import RawEvents
from minerlens_collector.tools.local_pod import LocalPod
from minerlens_core.features.aggregates import StreamAggregates, aggregate_events
from minerlens_core.schemas.aggregates import SyscallAggregate
from minerlens_core.syscalls import host_arch

from tests.collector.test_ebpf_source_live import CGROUP_ROOT, _kernel_can_load_bpf  # noqa: F401  (skip/fail rule)
from tests.programs import build

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(not is_available(), reason="tracefs not available")]


@pytest.fixture(scope="module")
def mixed() -> Path:
    return build("mixed_syscalls")


def test_same_counts_and_ngrams_from_tracefs_and_ebpf(mixed: Path) -> None:
    tracefs = TracefsSource(f"mlparity{os.getpid()}", buffer_kb=32768)  # holds the whole run
    ebpf = EbpfSource(CGROUP_ROOT, sample_budget=32)
    tracefs.start()
    ebpf.start()
    try:
        with LocalPod("ebpf", "parity") as pod:
            sp = pod.spawn([str(mixed), "20000", "3"], gated=True)  # held before exec: both start at release
            tracefs.add_pids([sp.pid])
            ebpf.set_streams({k: d for k, d in scan_pods(CGROUP_ROOT).dirs.items() if k[0] == pod.uid})
            ebpf.read_window()
            sp.release()
            parts = []
            while sp.proc.poll() is None:
                parts.append(tracefs.poll(0.05))
            parts += [tracefs.poll(0.05) for _ in range(4)]
            win = ebpf.read_window()
            assert sp.proc.returncode == 0
            raw = RawEvents.concat(parts)
            assert raw.missed == 0
            assert not any(tracefs.loss_delta().values())
            messages = AggregateMessages("n1", "c", host_arch(), ebpf.cheap).build(win)
    finally:
        ebpf.stop()
        tracefs.stop()
    assert not any(win.lost.values())
    (msg,) = [m for m in messages if m.envelope.container_id == pod.container_id]
    msg = SyscallAggregate.model_validate_json(msg.model_dump_json())  # what a consumer reads
    got = StreamAggregates.from_message(msg)
    want = aggregate_events(raw.nr, raw.tid, np.full(len(raw), sp.pid), ebpf.cheap)
    assert len(raw) > 60_000
    assert sum(got.counts.values()) == len(raw)
    assert got.counts == want.counts
    assert got.ngram2 == want.ngram2
    assert got.ngram3 == want.ngram3
    assert len({t for _, t, _ in got.counts}) == 3
    assert len(got.ngram3) > 10
    assert {t.pid for t in msg.tasks} == {sp.pid}
    assert 0 < len(msg.samples.nr) <= 32 + (os.cpu_count() or 1)
