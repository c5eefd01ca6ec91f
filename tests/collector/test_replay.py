"""Replaying a trace gives the batches a collector would have sent: same syscalls, same windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from minerlens_collector.tools.replay import batches_from_trace, interleave, merge_messages, messages_from_trace
from minerlens_core.errors import TraceFormatError
from minerlens_core.features import WindowBuilder, WindowPolicy, windows_from_trace
from minerlens_core.schemas import ResourceSample, ResourceSnapshot, SyscallBatch, decode_syscall_stream
from minerlens_core.traces import StreamSample, Trace, read_trace

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample-v1" / "traces"


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


def _with_samples(trace: Trace, every_ns: int = 250_000_000) -> Trace:
    """``trace`` with a resource sample of its stream every ``every_ns`` and fd kinds on every row."""
    t = trace.table
    ts = t.column("ts_ns").to_numpy()
    uid, cid = t.column("pod_uid")[0].as_py(), t.column("container_id")[0].as_py()
    samples = [
        StreamSample(pod_uid=uid, container_id=cid, sample=ResourceSnapshot(ts_ns=int(x), cpu_ns=i))
        for i, x in enumerate(range(int(ts.min()) - 1, int(ts.max()) + every_ns, every_ns))
    ]
    kinds = pa.array([i % 7 for i in range(t.num_rows)], pa.int8())
    return Trace(t.set_column(t.schema.get_field_index("fd_kind"), "fd_kind", kinds), trace.meta, samples)


def test_samples_go_before_the_first_batch_with_a_later_event() -> None:
    trace = _with_samples(read_trace(SAMPLE / "miner-randomx-2t-r1.parquet"))
    start = 1_900_000_000_000_000_000
    msgs = messages_from_trace(trace, node="n1", max_events=50, max_age_s=0.5, start_ns=start)
    batches = [m for m in msgs if isinstance(m, SyscallBatch)]
    samples = [m for m in msgs if isinstance(m, ResourceSample)]
    alone = batches_from_trace(trace, node="n1", max_events=50, max_age_s=0.5, start_ns=start)
    assert [(b.seq, b.start_ns, b.nr, b.fd_kind) for b in batches] == [
        (b.seq, b.start_ns, b.nr, b.fd_kind) for b in alone
    ]
    assert len(samples) == len(trace.resources)
    # shifted like the syscalls
    shift = start - int(trace.table.column("ts_ns").to_numpy().min())
    assert [s.sample.ts_ns for s in samples] == [r.sample.ts_ns + shift for r in trace.resources]
    for i, m in enumerate(msgs):
        if isinstance(m, ResourceSample):
            t = m.sample.ts_ns
            assert all((b.end_ns or 0) <= t for b in msgs[:i] if isinstance(b, SyscallBatch))
            assert all((b.end_ns or 0) > t for b in msgs[i:] if isinstance(b, SyscallBatch))
    assert all(m.envelope.key == batches[0].envelope.key for m in msgs)
    assert all(s.source == "replay" for s in samples)
    # the fd kinds ride along, row for row
    kinds = [k for b in batches for k in (b.fd_kind or [])]
    assert kinds == trace.table.column("fd_kind").to_pylist()
    for m in msgs:
        assert decode_syscall_stream(m.model_dump_json()) == m


def test_several_traces_merge_by_time_and_keep_each_streams_order() -> None:
    a = messages_from_trace(_with_samples(read_trace(SAMPLE / "idle-redis-r1.parquet")), node="n1", start_ns=10**18)
    b = messages_from_trace(
        _with_samples(read_trace(SAMPLE / "miner-scrypt-1t-r1.parquet")), node="n1", start_ns=10**18
    )
    merged = merge_messages([a, b])
    assert len(merged) == len(a) + len(b)
    for part in (a, b):
        key = part[0].envelope.key
        assert [m for m in merged if m.envelope.key == key] == part


def test_untrusted_trace_values_are_cleaned_or_refused(tmp_path: Path) -> None:
    trace = read_trace(SAMPLE / "idle-redis-r1.parquet")
    t = trace.table
    n = t.num_rows
    hostile = t.set_column(t.schema.get_field_index("comm"), "comm", pa.array(["x\x1b[2Jy\n"] * n))
    hostile = hostile.set_column(
        hostile.schema.get_field_index("fd_kind"),
        "fd_kind",
        pa.array([-3, 100, None, 2] * (n // 4) + [1] * (n % 4), pa.int8()),
    )
    batches = batches_from_trace(Trace(hostile, trace.meta), node="n1")
    assert {task.comm for b in batches for task in b.tasks} == {"x?[2Jy?"}
    assert [k for b in batches for k in b.fd_kind or []][:4] == [0, 0, 0, 2]
    bad_ns = t.set_column(t.schema.get_field_index("namespace"), "namespace", pa.array(["A/B"] * n))
    with pytest.raises(TraceFormatError, match="namespace"):
        batches_from_trace(Trace(bad_ns, trace.meta), node="n1")
    ts = t.column("ts_ns").to_numpy()
    negative = t.set_column(t.schema.get_field_index("ts_ns"), "ts_ns", pa.array(ts - int(ts.max()) - 5))
    with pytest.raises(TraceFormatError, match="out of range"):
        batches_from_trace(Trace(negative, trace.meta), node="n1")
    with pytest.raises(TraceFormatError, match="out of range"):
        batches_from_trace(trace, node="n1", start_ns=(1 << 63) - 10)
