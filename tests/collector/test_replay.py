"""Replaying a trace gives the batches a collector would have sent: same syscalls, same windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from minerlens_collector.replay import batches_from_trace, interleave
from minerlens_core.features import WindowBuilder, WindowPolicy, windows_from_trace
from minerlens_core.schemas import decode_syscall_stream
from minerlens_core.traces import read_trace

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "traces"


@pytest.mark.parametrize("name", ["miner-randomx-2t-r1.parquet", "redis-benchmark-r1.parquet"])
def test_replay_batches_carry_every_syscall_in_order(name: str) -> None:
    trace = read_trace(SAMPLE / name)
    batches = batches_from_trace(trace, node="n1", max_events=500, max_age_s=0.5, start_ns=1_900_000_000_000_000_000)
    assert sum(len(b) for b in batches) == trace.table.num_rows
    assert [b.seq for b in batches] == list(range(len(batches)))  # one stream per trace here: contiguous seq
    assert all(len(b) <= 500 for b in batches)
    assert all((b.end_ns or 0) - (b.start_ns or 0) < 500_000_000 for b in batches)
    assert batches[0].start_ns == 1_900_000_000_000_000_000
    ts = np.concatenate([np.asarray(b.dt_ns) + (b.start_ns or 0) for b in batches])
    orig = trace.table.column("ts_ns").to_numpy()
    assert np.array_equal(np.diff(ts), np.diff(orig)), "spacing of events is preserved"
    # every batch survives the wire format
    assert decode_syscall_stream(batches[-1].model_dump_json()) == batches[-1]


def test_streaming_windows_of_replayed_batches_equal_offline_windows() -> None:
    trace = read_trace(SAMPLE / "miner-randomx-2t-r1.parquet")  # ~40 s of a miner: many 1-s windows
    policy = WindowPolicy.time(1.0)
    offline = list(windows_from_trace(trace, policy))
    ts0 = int(trace.table.column("ts_ns").to_numpy().min())
    builder = WindowBuilder(policy)
    streamed = []
    for b in batches_from_trace(trace, node="n1", max_events=37, start_ns=ts0):
        streamed += builder.add(b)
    streamed += builder.flush()
    assert len(streamed) == len(offline) > 3
    for a, b in zip(streamed, offline, strict=True):
        assert (a.index, a.count, a.start_ns, a.end_ns) == (b.index, b.count, b.start_ns, b.end_ns)
        assert np.array_equal(a.ids, b.ids)


def test_interleave_orders_batches_of_several_pods_by_time() -> None:
    a = batches_from_trace(read_trace(SAMPLE / "idle-redis-r1.parquet"), node="n1", start_ns=10**18)
    b = batches_from_trace(read_trace(SAMPLE / "miner-scrypt-1t-r1.parquet"), node="n1", start_ns=10**18)
    merged = interleave([a, b])
    assert len(merged) == len(a) + len(b)
    starts = [m.start_ns or 0 for m in merged]
    assert starts == sorted(starts)
    assert {m.envelope.key for m in merged} == {a[0].envelope.key, b[0].envelope.key}
