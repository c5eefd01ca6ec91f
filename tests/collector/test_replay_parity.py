"""A replayed trace (batches and resource samples, in the collector's order) windows exactly like the trace
read offline: the order ``replay`` sends events and samples in is the one the feature library merges them in."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from minerlens_collector.tools.replay import messages_from_trace
from minerlens_core.features import FeatureSpec, WindowBuilder, WindowPolicy, vectorize_many, windows_from_trace
from minerlens_core.schemas import ProcessSample, ResourceSample, ResourceSnapshot, SyscallBatch
from minerlens_core.traces import TRACE_SCHEMA, StreamSample, Trace, TraceMeta

T0 = 1_700_000_000 * 10**9


def _trace(rng: np.random.Generator) -> Trace:
    n = int(rng.integers(200, 2000))
    ts = T0 + np.cumsum(rng.integers(0, 40_000_000, n))
    ts -= rng.integers(0, 300_000_000, n) * (rng.random(n) < 0.1)  # per-CPU merge: some times step back
    pids = rng.choice([11, 12], n)
    table = pa.Table.from_pydict(
        {
            "ts_ns": ts,
            "pod_uid": ["u1"] * n,
            "namespace": ["ns"] * n,
            "pod_name": ["web"] * n,
            "container_id": ["c" * 64] * n,
            "pid": pids.astype(np.int32),
            "tid": (pids * 10 + rng.integers(0, 2, n)).astype(np.int32),
            "comm": [f"p{p}" for p in pids],
            "nr": [None] * n,
            "syscall": rng.choice(["read", "write", "futex", "getpid", "epoll_wait"], n),
            "arch": ["x86_64"] * n,
            "fd_kind": rng.choice([0, 1, 2], n).astype(np.int8),
        },
        schema=TRACE_SCHEMA,
    )
    span = int(ts.max() - T0)
    samples = [
        StreamSample(
            pod_uid="u1",
            container_id="c" * 64,
            sample=ResourceSnapshot(
                ts_ns=int(t),
                cpu_ns=10**9 * k,
                processes=[ProcessSample(pid=11, comm="p11", cpu_ns=10**9 * k), ProcessSample(pid=12, cpu_ns=5 * k)],
            ),
        )
        for k, t in enumerate(range(T0 + 400_000_000, T0 + span + 2 * 10**9, 10**9))
    ]
    return Trace(table, TraceMeta(source="test", label="miner"), samples)


@pytest.mark.parametrize("seed", range(6))
def test_replay_windows_like_the_trace(seed: int) -> None:
    trace = _trace(np.random.default_rng(seed))
    policy = WindowPolicy(kind="time", seconds=2.0, per_process=True)
    offline = list(windows_from_trace(trace, policy))
    b = WindowBuilder(policy)
    streamed = []
    for m in messages_from_trace(trace, node="n1", max_events=97, max_age_s=0.7):
        if isinstance(m, SyscallBatch):
            streamed += b.add(m)
        else:
            assert isinstance(m, ResourceSample)
            streamed += b.add_sample((m.envelope.pod.uid if m.envelope.pod else "", m.envelope.container_id), m.sample)
    streamed += b.flush()
    assert [(w.index, w.pid, w.count) for w in streamed] == [(w.index, w.pid, w.count) for w in offline]
    spec = FeatureSpec.build(policy)
    np.testing.assert_array_equal(vectorize_many(streamed, spec), vectorize_many(offline, spec))
