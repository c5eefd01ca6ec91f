"""Resource context and per-process windows in the feature library (offline and streaming alike)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pyarrow as pa
import pytest
from minerlens_core.features import FeatureSpec, WindowBuilder, WindowPolicy, vectorize_many, windows_from_trace
from minerlens_core.features.resources import summarise
from minerlens_core.features.windows import Cols, StreamChunk, Window, merged
from minerlens_core.schemas.resources import FdCounts, FdKind, ProcessSample, ResourceSnapshot
from minerlens_core.traces import TRACE_SCHEMA, StreamSample, Trace, TraceMeta

T0 = 1_700_000_000 * 10**9  # an even number of 2-s slots since the epoch
S = 10**9
POLICY = WindowPolicy.time(2.0)
PER_PROC = WindowPolicy(kind="time", seconds=2.0, per_process=True)


def proc(pid: int, cpu_s: float, comm: str = "p", **kw: object) -> ProcessSample:
    return ProcessSample(pid=pid, comm=comm, cpu_ns=round((100 + cpu_s) * 1e9), threads=3, running=2, **kw)  # type: ignore[arg-type]


def snap(t_s: float, cpu_s: float, *procs: ProcessSample, throttled_s: float = 0.0) -> ResourceSnapshot:
    return ResourceSnapshot(
        ts_ns=T0 + round(t_s * S),
        cpu_ns=round((100 + cpu_s) * 1e9),
        throttled_ns=round(throttled_s * 1e9),
        memory_bytes=256 * 2**20,
        threads=3,
        processes=list(procs),
    )


def table(rows: list[tuple[float, str, int, int, str, int | None]]) -> pa.Table:
    """rows: (t seconds, syscall, tid, pid, comm, fd_kind)."""
    n = len(rows)
    return pa.Table.from_pydict(
        {
            "ts_ns": [T0 + round(t * S) for t, *_ in rows],
            "pod_uid": ["u"] * n,
            "namespace": ["ns"] * n,
            "pod_name": ["p"] * n,
            "container_id": [""] * n,
            "pid": [r[3] for r in rows],
            "tid": [r[2] for r in rows],
            "comm": [r[4] for r in rows],
            "nr": [None] * n,
            "syscall": [r[1] for r in rows],
            "arch": ["x86_64"] * n,
            "fd_kind": [r[5] for r in rows],
        },
        schema=TRACE_SCHEMA,
    )


def trace(rows: list[tuple[float, str, int, int, str, int | None]], samples: list[ResourceSnapshot]) -> Trace:
    return Trace(table(rows), TraceMeta(source="test"), [StreamSample(pod_uid="u", sample=s) for s in samples])


def feat(x: np.ndarray, spec: FeatureSpec, name: str) -> float:
    return float(x[spec.names.index(name)])


def test_summary_takes_cpu_from_the_samples_around_the_window() -> None:
    samples = [snap(t, 2.0 * t, proc(10, 2.0 * t)) for t in (-0.5, 0.5, 1.5, 2.5)]
    use = summarise(samples, T0, T0 + 2 * S)
    assert use is not None
    assert use.cpu_cores == pytest.approx(2.0)  # anchor -0.5 s, last 1.5 s
    assert use.span_s == pytest.approx(2.0)
    assert use.top is not None
    assert use.top.pid == 10
    assert use.top.cpu_cores == pytest.approx(2.0)
    assert summarise(samples, T0 - 10 * S, T0 - 5 * S) is None  # no sample before the window's end
    one = summarise(samples[:1], T0, T0 + 2 * S)
    assert one is not None
    assert math.isnan(one.cpu_cores)


def test_a_quiet_pod_that_burns_cpu_gets_windows_without_syscalls() -> None:
    """The no-yield miner case: two cores busy, a handful of syscalls every ~30 s."""
    samples = [snap(t, 2.0 * t, proc(10, 2.0 * t, "xmrig")) for t in np.arange(0.5, 12.0, 1.0)]
    rows = [(0.1, "epoll_wait", 10, 10, "xmrig", None), (9.1, "read", 11, 10, "xmrig", int(FdKind.SOCKET_INET))]
    spec = FeatureSpec.build(POLICY)
    ws = list(windows_from_trace(trace(rows, samples), spec.window))
    assert [w.index - T0 // (2 * S) for w in ws] == [0, 1, 2, 3, 4, 5]
    assert [w.count for w in ws] == [1, 0, 0, 0, 1, 0]
    x = vectorize_many(ws, spec)
    for row in x[1:4]:
        assert feat(row, spec, "res.has") == 1
        assert feat(row, spec, "res.cpu_cores") == pytest.approx(2.0)
        assert feat(row, spec, "stat.log_count") == 0
    assert feat(x[4], spec, "io.inet_share") == 1.0
    assert feat(x[4], spec, "io.has_fd_kind") == 1
    assert ws[2].comm == "xmrig"
    # an idle pod (no CPU) with the same syscalls gets no CPU-only windows
    idle = [snap(t, 0.0, proc(10, 0.0)) for t in np.arange(0.5, 12.0, 1.0)]
    assert [w.count for w in windows_from_trace(trace(rows, idle), spec.window)] == [1, 1]


def test_per_process_windows_split_a_mixed_pod_and_name_the_miner() -> None:
    rows = []
    for k in range(400):  # nginx: busy with syscalls, little CPU
        rows.append((k * 0.01, "writev" if k % 2 else "epoll_wait", 20, 20, "nginx", int(FdKind.SOCKET_INET)))
    rows.append((1.0, "futex", 31, 30, "php-fpm", None))
    rows.sort()
    samples = [
        snap(t, 1.1 * t, proc(20, 0.1 * t, "nginx"), proc(30, 1.0 * t, "php-fpm")) for t in (-0.5, 0.5, 1.5, 2.5, 3.5)
    ]
    spec = FeatureSpec.build(PER_PROC)
    ws = [w for w in windows_from_trace(trace(rows, samples), spec.window) if w.index == T0 // (2 * S)]
    assert [w.pid for w in ws] == [None, 30, 20]  # the stream window, then processes by CPU
    pod, miner, web = ws
    assert pod.comm == "php-fpm"  # the stream window names its busiest process
    assert miner.comm == "php-fpm"
    assert miner.count == 1
    assert web.comm == "nginx"
    assert web.count == 200
    assert pod.count == miner.count + web.count
    x = vectorize_many(ws, spec)
    assert feat(x[1], spec, "res.cpu_cores") == pytest.approx(1.0)
    assert feat(x[2], spec, "res.cpu_cores") == pytest.approx(0.1)
    assert feat(x[0], spec, "res.cpu_cores") == pytest.approx(1.1)


def test_one_process_pods_get_no_process_windows() -> None:
    rows = [(k * 0.1, "read", 5, 5, "redis", None) for k in range(30)]
    ws = list(windows_from_trace(trace(rows, [snap(t, 0.1 * t, proc(5, 0.1 * t)) for t in (0.5, 1.5, 2.5)]), PER_PROC))
    assert all(w.pid is None for w in ws)


@pytest.mark.parametrize("seed", range(12))
def test_streaming_equals_offline_with_samples_and_processes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 600))
    t = np.sort(rng.uniform(0, 9, n))
    pids = rng.choice([7, 8, 9], n)
    names = rng.choice(["read", "write", "futex", "getpid", "sched_yield", "recvfrom"], n)
    fdk = rng.choice([None, 1, 2, 4], n) if seed % 2 else [None] * n
    rows = [(float(t[i]), str(names[i]), int(pids[i]) + 100, int(pids[i]), f"c{pids[i]}", fdk[i]) for i in range(n)]
    samples = []
    for k, ts in enumerate(np.sort(rng.uniform(-1, 12, int(rng.integers(0, 20))))):
        samples.append(snap(float(ts), 0.3 * k, proc(7, 0.2 * k), proc(9, 0.1 * k, fds=FdCounts(socket_inet=1))))
    tr = trace(rows, samples)
    policy = WindowPolicy(kind="time", seconds=1.0, per_process=True, max_processes=2)
    offline = list(windows_from_trace(tr, policy))
    # streaming: the same canonical order, cut at random points
    chunk = next(iter(__import__("minerlens_core.features.windows", fromlist=["x"]).chunks_from_table(tr.table)))
    b = WindowBuilder(policy)
    streamed: list[Window] = []
    for part in merged(chunk, samples):
        if isinstance(part, Cols):
            cuts = sorted(set(rng.integers(0, len(part), 3).tolist()) | {0, len(part)})
            for lo, hi in itertools.pairwise(cuts):
                c = part.slice(lo, hi)
                streamed += b.add(
                    StreamChunk("u", "", c.ids, c.tids, c.ts, "ns", "p", c.pids, c.fdk if seed % 2 else None)
                )
        else:
            streamed += b.add_sample(("u", ""), part)
    streamed += b.flush()
    assert len(streamed) == len(offline)
    spec = FeatureSpec.build(policy)
    for a, z in zip(offline, streamed, strict=True):
        assert (a.index, a.pid, a.count, a.complete, a.start_ns) == (z.index, z.pid, z.count, z.complete, z.start_ns)
    if offline:
        np.testing.assert_array_equal(vectorize_many(offline, spec), vectorize_many(streamed, spec))


def test_state_round_trip_gives_the_same_windows() -> None:
    rng = np.random.default_rng(3)
    rows = [(float(t), "read", 11, 10, "a", None) for t in np.sort(rng.uniform(0, 8, 300))]
    samples = [snap(t, 0.5 * t, proc(10, 0.5 * t)) for t in np.arange(0.5, 9, 1.0)]
    tr = trace(rows, samples)
    chunk = next(iter(__import__("minerlens_core.features.windows", fromlist=["x"]).chunks_from_table(tr.table)))
    parts = list(merged(chunk, samples))
    ref, cut = WindowBuilder(POLICY), len(parts) // 2
    out_ref: list[Window] = []
    for p in parts:
        out_ref += (
            ref.add(StreamChunk("u", "", p.ids, p.tids, p.ts, pids=p.pids))
            if isinstance(p, Cols)
            else ref.add_sample(("u", ""), p)
        )
    out_ref += ref.flush()
    a = WindowBuilder(POLICY)
    out: list[Window] = []
    for p in parts[:cut]:
        out += (
            a.add(StreamChunk("u", "", p.ids, p.tids, p.ts, pids=p.pids))
            if isinstance(p, Cols)
            else a.add_sample(("u", ""), p)
        )
    state, events = a.state(("u", "")), a.buffered(("u", ""))
    assert state is not None
    b = WindowBuilder(POLICY)
    b.restore(StreamChunk("u", "", np.zeros(0, np.int16), np.zeros(0, np.int32)), state, events)
    for p in parts[cut:]:
        out += (
            b.add(StreamChunk("u", "", p.ids, p.tids, p.ts, pids=p.pids))
            if isinstance(p, Cols)
            else b.add_sample(("u", ""), p)
        )
    out += b.flush()
    np.testing.assert_array_equal(vectorize_many(out), vectorize_many(out_ref))


def test_a_window_of_cheap_calls_only_is_vectorised() -> None:
    """Regression (issue #13): a pod making only getppid crashed the featurizer in _runs()."""
    ids = np.full(50, __import__("minerlens_core.features", fromlist=["x"]).index_of("getppid"), np.int16)
    w = Window("u", "", "", "", 0, 0, 49, T0, T0 + S, ids, np.ones(50, np.int32), T0 + np.arange(50, dtype=np.int64))
    x = vectorize_many([w])
    assert feat(x[0], FeatureSpec.default(), "cheap_share") == 1.0
    assert feat(x[0], FeatureSpec.default(), "thread.dominated") == 0


def test_version_1_specs_keep_their_layout_and_digest() -> None:
    v1 = FeatureSpec.build(WindowPolicy.time(2.0), version="1")
    assert not any(n.startswith(("res.", "io.")) for n in v1.names)
    assert FeatureSpec.model_validate_json(v1.model_dump_json()).digest == v1.digest
    v2 = FeatureSpec.build(WindowPolicy.time(2.0))
    assert v2.dim == v1.dim + 24
    assert v2.digest != v1.digest
    assert FeatureSpec.build(PER_PROC).digest != v2.digest


def test_an_idle_server_is_offline_but_a_connection_is_not() -> None:
    """A listening socket is not a connection: an idle server (listening, no socket I/O) is gated by the network
    gate, the same pod holding one connection besides is not; samples from collectors that could not tell
    (``socket_listen`` 0) keep counting every inet socket."""
    from minerlens_core.features.gates import offline_mask

    spec = FeatureSpec.build(POLICY)
    rows = [(0.1 * i, "epoll_wait", 10, 10, "postgres", None) for i in range(15)]

    def sockets(inet: int, listen: int) -> float:
        fds = FdCounts(socket_inet=inet, socket_listen=listen, file=4)
        samples = [snap(t, 0.1 * t, proc(10, 0.1 * t, comm="postgres", fds=fds)) for t in (-0.5, 0.5, 1.5)]
        (x,) = vectorize_many([w for w in windows_from_trace(trace(rows, samples), POLICY) if w.count], spec)
        assert bool(offline_mask(spec.names, x)[0]) is (inet == listen)
        return feat(x, spec, "res.sockets_inet")

    assert sockets(2, 2) == 0  # listening on IPv4 and IPv6: offline
    assert sockets(3, 2) == 1  # and one connection (a pool?)
    assert sockets(2, 0) == 2  # an older collector: unknown, counted
    with pytest.raises(ValueError, match="cannot exceed"):
        FdCounts(socket_inet=1, socket_listen=2)


def test_an_unreadable_fd_table_is_unknown_and_never_gated() -> None:
    """A process whose fd table the collector could not read (``fds`` null), or a sample that left processes
    out, makes the pod's socket count unknown (NaN): the network gate must not take that for "no socket"."""
    from minerlens_core.features.gates import offline_mask

    spec = FeatureSpec.build(POLICY)
    rows = [(0.1 * i, "futex", 10, 10, "xmrig", None) for i in range(15)]

    def gated(*, fds: FdCounts | None, omitted: int = 0) -> tuple[bool, float]:
        samples = []
        for t in (-0.5, 0.5, 1.5):
            s = snap(t, 1.9 * t, proc(10, 1.9 * t, comm="xmrig", fds=fds))
            samples.append(s.model_copy(update={"processes_omitted": omitted}))
        (x,) = vectorize_many([w for w in windows_from_trace(trace(rows, samples), POLICY) if w.count], spec)
        return bool(offline_mask(spec.names, x)[0]), feat(x, spec, "res.sockets_inet")

    assert gated(fds=FdCounts(file=3)) == (True, 0.0)  # read, and truly no socket: offline
    closed, inet = gated(fds=None)
    assert not closed
    assert math.isnan(inet)
    closed, inet = gated(fds=FdCounts(file=3), omitted=300)
    assert not closed
    assert math.isnan(inet)
