"""Context dropout: the bare twin of a window is exactly what a trace without samples and fd kinds gives."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from minerlens_core.features import FeatureSpec, WindowPolicy, vectorize_many, windows_from_trace
from minerlens_core.schemas.resources import ProcessSample, ResourceSnapshot
from minerlens_core.traces import TRACE_SCHEMA, StreamSample, Trace, TraceMeta
from minerlens_training.context import bare_rows, identity_columns, with_bare_rows, with_quiet_twins
from minerlens_training.datasets import Dataset, bare_features

T0 = 1_700_000_000 * 10**9
S = 10**9
POLICY = WindowPolicy.time(2.0)


def _trace(with_context: bool) -> Trace:
    """A miner-like pod: 3 s of a few calls per second on sockets, then 3 s of no call at all (CPU only)."""
    rows = [(T0 + round(t * S), name, kind) for t, name, kind in
            [(0.1, "read", 2), (0.4, "write", 2), (0.9, "sched_yield", 0), (1.3, "epoll_wait", 0),
             (2.2, "read", 2), (2.6, "write", 2)]]  # fmt: skip
    n = len(rows)
    table = pa.Table.from_pydict(
        {
            "ts_ns": [r[0] for r in rows], "pod_uid": ["u"] * n, "namespace": ["ns"] * n, "pod_name": ["p"] * n,
            "container_id": [""] * n, "pid": [7] * n, "tid": [8] * n, "comm": ["xmrig"] * n, "nr": [None] * n,
            "syscall": [r[1] for r in rows], "arch": ["x86_64"] * n,
            "fd_kind": [r[2] if with_context else None for r in rows],
        },
        schema=TRACE_SCHEMA,
    )  # fmt: skip
    samples = [
        StreamSample(
            pod_uid="u",
            sample=ResourceSnapshot(
                ts_ns=T0 + round((t - 0.5) * S),
                cpu_ns=round((100 + 2 * t) * 1e9),
                memory_bytes=2**28,
                threads=3,
                processes=[ProcessSample(pid=7, comm="xmrig", cpu_ns=round((100 + 2 * t) * 1e9), threads=3, running=2)],
            ),
        )
        for t in range(8)
    ]
    return Trace(table, TraceMeta(source="test"), samples if with_context else [])


def test_bare_twin_equals_the_features_of_a_trace_without_context() -> None:
    spec = FeatureSpec.default()
    full = list(windows_from_trace(_trace(True), POLICY))
    bare = list(windows_from_trace(_trace(False), POLICY))
    X = vectorize_many(full, spec)
    Xb = bare_features(full, spec)
    has, fdk = spec.names.index("res.has"), spec.names.index("io.has_fd_kind")
    with_calls = [i for i, w in enumerate(full) if w.count > 0]
    cpu_only = [i for i, w in enumerate(full) if w.count == 0]
    assert cpu_only, "the samples make windows of their own where no call was made"
    assert np.isnan(Xb[cpu_only]).all()
    assert len(with_calls) == len(bare)
    np.testing.assert_array_equal(Xb[with_calls], vectorize_many(bare, spec))
    assert (X[with_calls, has] == 1).all()
    assert (Xb[with_calls, has] == 0).all()
    assert (X[with_calls, fdk] == 1).all()
    assert (Xb[with_calls, fdk] == 0).all()


def test_training_rows_are_the_windows_and_their_bare_twins() -> None:
    spec = FeatureSpec.default()
    full = list(windows_from_trace(_trace(True), POLICY))
    X = vectorize_many(full, spec)
    Xb = bare_features(full, spec)
    n = len(full)
    ds = Dataset.__new__(Dataset)
    object.__setattr__(ds, "y", np.ones(n, np.int64))
    object.__setattr__(ds, "X_bare", Xb)
    object.__setattr__(ds, "bare_ok", ~np.isnan(Xb).all(axis=1))
    rows = np.arange(n, dtype=np.int64)
    Xt, yt, src = with_bare_rows(ds, rows, X)
    twins = bare_rows(ds, rows)
    assert len(twins) == sum(w.count > 0 for w in full)
    assert Xt.shape == (n + len(twins), spec.dim)
    assert len(yt) == len(src) == len(Xt)
    np.testing.assert_array_equal(Xt[n:], Xb[twins])
    assert not np.isnan(Xt).all(axis=1).any()
    object.__setattr__(ds, "X_bare", None)
    Xo, _, src_o = with_bare_rows(ds, rows, X)
    assert len(Xo) == n
    assert (src_o == rows).all()


def test_a_quiet_twin_keeps_what_the_pod_does_and_drops_which_syscalls() -> None:
    """A quiet twin is its window with the syscall-identity columns at zero — exactly what a window of the same
    pod with no syscall at all already has there — and everything else (CPU, sockets, volume) kept."""
    spec = FeatureSpec.default()
    full = list(windows_from_trace(_trace(True), POLICY))
    X = vectorize_many(full, spec)
    ident = identity_columns(spec.names)
    names = [spec.names[i] for i in ident]
    assert "freq.sched_yield" in names
    assert "rate.epoll_wait" in names
    assert any(n.startswith("ngram") for n in names)
    assert not {"res.cpu_cores", "res.sockets_inet", "rate.syscalls_per_s", "io.inet_per_s"} & set(names)
    silent = np.array([i for i, w in enumerate(full) if w.count == 0], np.int64)
    busy = np.array([i for i, w in enumerate(full) if w.count > 0], np.int64)
    assert silent.size
    assert busy.size
    assert (X[np.ix_(silent, ident)] == 0).all(), "a window without syscalls has no syscall identity"
    assert (X[np.ix_(busy, ident)] != 0).any(axis=1).all()

    has = spec.names.index("res.has")
    y = np.ones(len(X), np.int64)
    src = np.arange(len(X), dtype=np.int64)
    eligible = np.arange(len(X)) % 2 == 0
    X[0, has] = 0.0  # a window without resource samples (a bare one) gets no quiet twin
    Xt, yt, st, et = with_quiet_twins(spec.names, X, y, src, eligible)
    twinned = np.flatnonzero(X[:, has] == 1.0)
    assert len(Xt) == len(X) + len(twinned)
    np.testing.assert_array_equal(Xt[: len(X)], X)
    np.testing.assert_array_equal(st[len(X) :], twinned)
    np.testing.assert_array_equal(yt[len(X) :], y[twinned])
    assert et is not None
    np.testing.assert_array_equal(et[len(X) :], eligible[twinned])
    twins = Xt[len(X) :]
    assert (twins[:, ident] == 0).all()
    keep = np.setdiff1d(np.arange(spec.dim), ident)
    np.testing.assert_array_equal(twins[:, keep], X[twinned][:, keep])
