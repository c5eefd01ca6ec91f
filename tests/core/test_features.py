"""The feature library: vocabulary, windows (offline == streaming), vectors, spec, frames."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pytest
from minerlens_core.features import (
    OTHER,
    OTHER_ID,
    VOCABULARY,
    FeatureParams,
    FeatureSpec,
    StreamChunk,
    Window,
    WindowBuilder,
    WindowPolicy,
    chunk_from_batch,
    chunks_from_table,
    frames,
    ids_from_names,
    ids_from_nr,
    ids_of,
    index_of,
    ngram_buckets,
    vectorize,
    vectorize_many,
    windows_from_trace,
)
from minerlens_core.features.vocabulary import check_pinned
from minerlens_core.schemas.envelope import Envelope, PodRef
from minerlens_core.schemas.events import SyscallBatch
from minerlens_core.syscalls import Arch, syscall_number, table
from minerlens_core.traces import TRACE_SCHEMA, Trace, TraceMeta

MINER = ["futex", "sched_yield", "mmap", "munmap", "madvise", "futex", "futex", "read", "write", "sched_yield"]
SPEC = FeatureSpec.default()
vectorize_mod = importlib.import_module("minerlens_core.features.vectorize")  # the module, not the function
T0 = 1_700_000_000_000_000_000


def col(x: np.ndarray, name: str) -> np.ndarray:
    """The columns of one feature group (``name`` prefix) of vectors ``x``."""
    idx = [i for i, n in enumerate(SPEC.names) if n == name or n.startswith(name + ".")]
    return x[..., idx]


def feat(x: np.ndarray, name: str) -> float:
    return float(x[SPEC.names.index(name)])


def window(names: Sequence[str], tids: Sequence[int] | None = None, ts: Sequence[int] | None = None) -> Window:
    ids = ids_of(names)
    t = np.asarray(tids if tids is not None else [1] * len(ids), dtype=np.int32)
    ts_arr = None if ts is None else np.asarray(ts, dtype=np.int64)
    start, end = (None, None) if ts_arr is None else (int(ts_arr[0]), int(ts_arr[-1]) + 1)
    return Window("u", "ns", "pod", "", 0, 0, len(ids) - 1, start, end, ids, t, ts_arr)


def make_table(rng: np.random.Generator, n: int, streams: int = 3, timed: bool = True, late: bool = False) -> pa.Table:
    """A random trace interleaving several (pod, container) streams; ``late``: 10% of timestamps step back."""
    names = np.array([*MINER, "getpid", "nanosleep", "epoll_wait", "sys_999", "openat"])
    s = rng.integers(0, streams, n)
    ts = T0 + np.cumsum(rng.integers(0, 3_000_000, n))
    if late:
        ts -= rng.integers(0, 60_000_000, n) * (rng.random(n) < 0.1)
    return pa.Table.from_pydict(
        {
            "ts_ns": ts if timed else [None] * n,
            "pod_uid": [f"pod{k % 2}" for k in s],
            "namespace": ["ns"] * n,
            "pod_name": [f"name{k % 2}" for k in s],
            "container_id": [f"c{k // 2}" for k in s],
            "pid": np.ones(n, np.int32),
            "tid": rng.integers(1, 6, n).astype(np.int32),
            "comm": ["x"] * n,
            "nr": [None] * n,
            "syscall": rng.choice(names, n),
            "arch": ["x86_64"] * n,
            "fd_kind": [None] * n,
        },
        schema=TRACE_SCHEMA,
    )


def same(a: Window, b: Window) -> bool:
    scalars = ("pod_uid", "namespace", "pod_name", "container_id", "index", "first_row", "last_row")
    if any(getattr(a, f) != getattr(b, f) for f in (*scalars, "start_ns", "end_ns", "complete")):
        return False
    if (a.ts_ns is None) != (b.ts_ns is None):
        return False
    arrays: list[tuple[np.ndarray, np.ndarray]] = [(a.ids, b.ids), (a.tids, b.tids)]
    if a.ts_ns is not None and b.ts_ns is not None:
        arrays.append((a.ts_ns, b.ts_ns))
    return all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in arrays)


def by_stream(ws: list[Window]) -> dict[tuple[str, str], list[Window]]:
    out: dict[tuple[str, str], list[Window]] = {}
    for w in ws:
        out.setdefault(w.key, []).append(w)
    return out


# ------------------------------------------------------------------------------------ vocabulary


def test_vocabulary_is_pinned_sorted_and_shared_across_archs() -> None:
    check_pinned()
    assert VOCABULARY[-1] == OTHER
    assert list(VOCABULARY[:-1]) == sorted(VOCABULARY[:-1])
    common = set(table(Arch.X86_64).values()) & set(table(Arch.ARM64).values())
    assert len(common) > 250
    for name in common:
        x86, arm = syscall_number(name, Arch.X86_64), syscall_number(name, Arch.ARM64)
        assert x86 is not None
        assert arm is not None
        assert ids_from_nr([x86], Arch.X86_64)[0] == ids_from_nr([arm], Arch.ARM64)[0] == index_of(name)
    assert ids_from_nr([0, 63], Arch.X86_64)[0] == ids_from_nr([63], Arch.ARM64)[0] == index_of("read")
    assert list(ids_from_nr([-1, 999, 10**6], Arch.X86_64)) == [OTHER_ID] * 3
    got = ids_from_names(pa.array(["read", "sys_enter_read", "sys_read", "no_such", "sys_999", None]))
    assert list(got) == [index_of("read")] * 3 + [OTHER_ID] * 3


# ------------------------------------------------------------------------------------- windows


@pytest.mark.parametrize("n", [0, 999, 1000, 2499, 2500, 2501, 3000])
def test_count_windows_cover_every_syscall_once(n: int) -> None:
    rng = np.random.default_rng(n)
    t = make_table(rng, n, streams=1, timed=False)
    ws = list(windows_from_trace(t, WindowPolicy.count(1000)))
    full, rest = divmod(n, 1000)
    assert len(ws) == full + (rest >= 500)
    assert all(w.complete for w in ws[:full])
    assert all(not w.complete for w in ws[full:])
    assert [w.index for w in ws] == list(range(len(ws)))
    covered = sum(w.count for w in ws)
    assert covered == full * 1000 + (rest if rest >= 500 else 0)
    seq = ids_from_names(t.column("syscall"))
    if ws:
        assert np.array_equal(np.concatenate([w.ids for w in ws]), seq[:covered])
        assert [w.first_row for w in ws] == [1000 * k for k in range(len(ws))]
        assert ws[-1].last_row == covered - 1
    assert all(w.ts_ns is None and w.start_ns is None for w in ws)


def test_sliding_and_gapped_count_windows() -> None:
    t = make_table(np.random.default_rng(1), 2300, streams=1)
    slide = list(windows_from_trace(t, WindowPolicy.count(1000, stride=250)))
    assert [w.first_row for w in slide] == [0, 250, 500, 750, 1000, 1250, 1500]
    assert slide[-1].count == 800
    assert not slide[-1].complete
    covered = list(windows_from_trace(t.slice(0, 2250), WindowPolicy.count(1000, stride=250)))
    assert covered[-1].last_row == 2249
    assert covered[-1].complete
    gapped = list(windows_from_trace(t, WindowPolicy.count(100, stride=1000, min_fill=10)))
    assert [(w.first_row, w.count) for w in gapped] == [(0, 100), (1000, 100), (2000, 100)]


def test_time_windows_follow_epoch_slots() -> None:
    t = make_table(np.random.default_rng(2), 5000, streams=1)
    ws = list(windows_from_trace(t, WindowPolicy.time(0.5)))
    ts = t.column("ts_ns").to_numpy()
    slots = ts // 500_000_000
    assert [w.index for w in ws] == sorted(set(slots.tolist()))
    assert sum(w.count for w in ws) == len(ts)
    for w in ws:
        assert np.all(w.ts_ns // 500_000_000 == w.index)  # type: ignore[operator]
        assert (w.start_ns, w.end_ns) == (w.index * 500_000_000, (w.index + 1) * 500_000_000)
    assert [w.complete for w in ws] == [False] + [True] * (len(ws) - 2) + [False]
    with pytest.raises(ValueError, match="need timestamps"):
        list(windows_from_trace(make_table(np.random.default_rng(2), 50, timed=False), WindowPolicy.time(1)))


def test_late_events_join_the_current_slot_and_advance_closes_idle_slots() -> None:
    b = WindowBuilder(WindowPolicy.time(1.0))
    sec = 1_000_000_000
    ids = ids_of(["read"] * 4)
    tids = np.ones(4, np.int32)
    assert b.add(StreamChunk("p", "", ids, tids, np.array([T0, T0 + 1, T0 + sec, T0 + 5]))) != []
    assert b.pending() == {("p", ""): 2}  # the late T0 + 5 joined slot T0/sec + 1
    out = b.advance(T0 + 2 * sec)
    assert len(out) == 1
    assert out[0].count == 2
    assert out[0].complete
    assert b.flush() == []


def test_streaming_equals_offline_for_any_chunking() -> None:
    rng = np.random.default_rng(42)
    policies = [
        WindowPolicy.count(50),
        WindowPolicy.count(64, stride=16),
        WindowPolicy.count(30, stride=70, min_fill=5),
        WindowPolicy.count(1, min_fill=1),
        WindowPolicy.time(0.05),
        WindowPolicy.time(0.2, min_fill=3),
    ]
    for case in range(60):
        policy = policies[case % len(policies)]
        timed = policy.kind == "time" or bool(rng.integers(0, 2))
        t = make_table(rng, int(rng.integers(0, 1500)), streams=int(rng.integers(1, 5)), timed=timed, late=True)
        offline = list(windows_from_trace(Trace(t, TraceMeta(source="test")), policy))
        builder, online = WindowBuilder(policy), []
        cuts = np.sort(rng.integers(0, t.num_rows + 1, int(rng.integers(0, 40))))
        for lo, hi in zip([0, *cuts], [*cuts, t.num_rows], strict=True):
            for chunk in chunks_from_table(t.slice(lo, hi - lo)):
                online += builder.add(chunk)
        online += builder.flush()
        a, b = by_stream(offline), by_stream(online)
        assert a.keys() == b.keys(), case
        for k in a:
            assert len(a[k]) == len(b[k]), (case, k)
            assert all(same(x, y) for x, y in zip(a[k], b[k], strict=True)), (case, k)


def test_batches_of_either_arch_give_the_same_windows() -> None:
    names = [*MINER, "getpid"] * 30
    out = []
    for arch in Arch:
        nrs = [syscall_number(n, arch) or 0 for n in names]
        env = Envelope(node="n1", pod=PodRef(uid="u1", namespace="ns", name="p"), container_id="c")
        b = WindowBuilder(WindowPolicy.count(100))
        ws = []
        for seq, lo in enumerate(range(0, len(names), 37)):
            part = nrs[lo : lo + 37]
            batch = SyscallBatch(
                envelope=env, source="replay", arch=arch, seq=seq, start_ns=T0,
                nr=part, tid=[7] * len(part), dt_ns=list(range(lo, lo + len(part))),
            )  # fmt: skip
            assert chunk_from_batch(batch).ts_ns[0] == T0 + lo  # type: ignore[index]
            ws += b.add(batch)
        out.append(vectorize_many(ws + b.flush()))
    assert out[0].shape == (3, SPEC.dim)
    assert np.array_equal(out[0], out[1], equal_nan=True)


# ------------------------------------------------------------------------------------- vectors


def test_histograms_sum_to_one_and_layout_matches_spec() -> None:
    ws = list(windows_from_trace(make_table(np.random.default_rng(3), 5000)))
    x = vectorize_many(ws)
    assert x.shape == (len(ws), SPEC.dim)
    assert x.dtype == np.float32
    for group in ("freq", "freq_nocheap", "ngram2", "ngram2_nc", "ngram3_nc"):
        np.testing.assert_allclose(col(x, group).sum(axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(vectorize(ws[1]), x[1], equal_nan=True)
    assert feat(x[0], "time.has_time") == 1.0
    assert feat(x[0], "rate.syscalls_per_s") > 0


def test_batched_equals_one_by_one_across_internal_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    ws = list(windows_from_trace(make_table(np.random.default_rng(4), 4000), WindowPolicy.count(300)))
    whole = vectorize_many(ws)
    monkeypatch.setattr(vectorize_mod, "_MAX_BATCH_WINDOWS", 3)
    assert np.array_equal(vectorize_mod.vectorize_many(ws), whole, equal_nan=True)
    assert np.array_equal(np.stack([vectorize(w) for w in ws]), whole, equal_nan=True)


def test_dominant_syscall_has_the_largest_frequency() -> None:
    rng = np.random.default_rng(5)
    names = ["sched_yield"] * 600 + list(rng.choice([*MINER, "openat", "close"], 400))
    x = vectorize(window(list(rng.permutation(names))))
    freq = col(x, "freq")
    assert VOCABULARY[int(np.argmax(freq))] == "sched_yield"
    assert freq.max() >= 0.6
    assert feat(x, "stat.top_share") == pytest.approx(freq.max())


def test_injected_cheap_syscalls_do_not_move_no_cheap_features() -> None:
    rng = np.random.default_rng(6)
    real = list(rng.choice(MINER, 300))
    real_tids = list(rng.integers(1, 4, 300))
    noisy, noisy_tids = list(real), list(real_tids)
    for _ in range(700):  # 70% of the final window is injected noise, at random places
        pos = int(rng.integers(0, len(noisy) + 1))
        noisy.insert(pos, str(rng.choice(["getpid", "nanosleep"])))
        noisy_tids.insert(pos, int(rng.integers(1, 4)))
    clean, dirty = vectorize(window(real, real_tids)), vectorize(window(noisy, noisy_tids))
    assert np.abs(col(clean, "freq") - col(dirty, "freq")).sum() > 1.0
    assert feat(dirty, "cheap_share") == pytest.approx(0.7)
    assert feat(clean, "cheap_share") == 0
    robust = ["freq_nocheap", "ngram2_nc", "ngram3_nc", "stat.distinct_nc", "stat.entropy_nc"]
    robust += ["stat.longest_run_nc", "stat.top_share_nc", "thread.dominated"]
    for name in robust:
        assert np.array_equal(col(clean, name), col(dirty, name)), name
    assert not np.array_equal(col(clean, "ngram2"), col(dirty, "ngram2"))


def test_thread_and_rate_features() -> None:
    n = 1000
    names = ["futex"] * 500 + list(np.random.default_rng(7).choice(MINER, 500))
    tids = [1] * 500 + [2] * 400 + [3] * 95 + [4] * 5
    ts = [T0 + 1000 * i for i in range(n)]  # one syscall per µs
    x = vectorize(window(names, tids, ts))
    assert feat(x, "thread.count") == 4
    assert feat(x, "thread.busiest_share") == 0.5
    assert feat(x, "thread.dominated") == 1  # thread 1 (all futex); thread 4 has < 8 calls
    assert feat(x, "rate.syscalls_per_s") == pytest.approx(1e6, rel=2e-3)
    assert feat(x, "iat.median_us") == feat(x, "iat.p90_us") == pytest.approx(1.0)
    assert feat(x, "rate.futex") == pytest.approx(1e6 * names.count("futex") / n, rel=2e-3)
    untimed = vectorize(window(names, tids))
    assert feat(untimed, "time.has_time") == 0
    assert np.isnan(col(untimed, "rate")).all()
    assert np.isnan(col(untimed, "iat")).all()
    assert feat(untimed, "res.has") == feat(untimed, "io.has_fd_kind") == 0
    unknown_without_time_or_samples = [
        k
        for k in SPEC.names
        if k[:4] in ("rate", "iat.")
        or (k.startswith("res.") and k != "res.has")
        or k in ("io.inet_share", "io.ipc_share", "io.socket_per_s", "io.inet_per_s", "io.file_per_s")
    ]
    assert np.isnan(untimed[[SPEC.names.index(k) for k in unknown_without_time_or_samples]]).all()
    assert not np.isnan(np.delete(untimed, [SPEC.names.index(k) for k in unknown_without_time_or_samples])).any()


# ---------------------------------------------------------------------------- hashing and spec


_HASH_PROBE = (
    "import json; from minerlens_core.features import ids_of, ngram_buckets, FeatureSpec;"
    "s = ids_of(['futex', 'sched_yield', 'mmap', 'read', 'futex', 'write', 'munmap']);"
    "b2, b3 = ngram_buckets(s, 2, 128).tolist(), ngram_buckets(s, 3, 128).tolist();"
    "print(json.dumps([b2, b3, FeatureSpec.default().digest]))"
)


def test_ngram_hash_is_stable_across_processes_and_releases() -> None:
    seq = ids_of(["futex", "sched_yield", "mmap", "read", "futex", "write", "munmap"])
    here = [ngram_buckets(seq, 2, 128).tolist(), ngram_buckets(seq, 3, 128).tolist(), SPEC.digest]
    for seed in ("1", "12345"):
        env = {"PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", _HASH_PROBE], capture_output=True, text=True, check=True, env=env)
        assert json.loads(out.stdout) == here
    assert here[0] == [55, 89, 54, 83, 81, 23]  # golden: changing the hash is a feature-version change
    assert here[1] == [125, 4, 30, 127, 62]
    assert ngram_buckets(ids_of(["read", "write"]), 2, 128)[0] != ngram_buckets(ids_of(["write", "read"]), 2, 128)[0]


def test_spec_digest_tracks_every_parameter() -> None:
    base = FeatureSpec.default()
    assert base.dim == len(set(base.names)) == vectorize(window(MINER)).shape[0]
    variants = [
        FeatureSpec.build(params=FeatureParams(buckets=64)),
        FeatureSpec.build(params=FeatureParams(cheap=("getpid",))),
        FeatureSpec.build(params=FeatureParams(dominated_share=0.9)),
        FeatureSpec.build(window=WindowPolicy.count(500)),
        FeatureSpec.build(window=WindowPolicy.time(10)),
    ]
    assert len({base.digest, *(v.digest for v in variants)}) == len(variants) + 1
    assert FeatureSpec.build(window=WindowPolicy.count(1000, stride=1000)).digest == base.digest
    loaded = FeatureSpec.model_validate_json(base.model_dump_json())
    assert loaded == base
    tampered = json.loads(base.model_dump_json()) | {"digest": "0" * 64}
    with pytest.raises(ValueError, match="digest"):
        FeatureSpec.model_validate(tampered)
    with pytest.raises(ValueError, match="vocabulary"):
        FeatureParams(cheap=("getpid", "not_a_syscall"))
    assert "sched_yield" not in base.params.cheap
    assert "freq_nocheap.getpid" not in base.names


def test_frames_are_sliding_id_windows() -> None:
    w = window([*MINER, *MINER, *MINER, *MINER])  # 40 ids
    f = frames(w, n=35)
    assert f.shape == (6, 35)
    assert f.dtype == np.int16
    assert all(np.array_equal(f[k], w.ids[k : k + 35]) for k in range(6))
    assert frames(w, n=35, stride=4).shape == (2, 35)
    assert frames(w.ids[:10], n=35).shape == (0, 35)
    assert np.array_equal(frames(np.arange(5), n=2, stride=2), [[0, 1], [2, 3]])
