"""Throughput of the feature library on a synthetic trace (single process, one core).

    .venv/bin/python bench/features_throughput.py [--events 2000000] [--chunk 16384] [--repeat 3]

Measures, best of ``--repeat`` runs after a warm-up:
  * offline: ``windows_from_trace`` + ``vectorize_many`` over a trace table (4 pod/container streams,
    32 threads, timestamps), count windows W=1000 (and 1-second time windows);
  * streaming: ``WindowBuilder.add`` with ``--chunk``-event chunks per stream, each add's windows
    vectorised at once (what the streaming featurizer does), then ``flush``;
  * batch decode: ``chunk_from_batch`` (nr -> vocabulary ids, dt -> ts) on pre-built ``SyscallBatch``es.
Prints syscalls/s for each; nothing is asserted.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
from minerlens_core.features import (
    FeatureSpec,
    StreamChunk,
    WindowBuilder,
    WindowPolicy,
    chunk_from_batch,
    chunks_from_table,
    vectorize_many,
    windows_from_trace,
)
from minerlens_core.schemas.envelope import Envelope, PodRef
from minerlens_core.schemas.events import SyscallBatch
from minerlens_core.syscalls import Arch, syscall_number
from minerlens_core.traces import TRACE_SCHEMA

MIX = {
    "futex": 20, "sched_yield": 12, "read": 10, "write": 8, "epoll_wait": 6, "mmap": 4, "munmap": 4,
    "madvise": 2, "openat": 3, "close": 3, "newfstatat": 3, "getpid": 5, "nanosleep": 5,
    "clock_gettime": 5, "recvfrom": 3, "sendto": 3, "ioctl": 2, "brk": 1, "rt_sigprocmask": 1,
}  # fmt: skip


def synthetic_table(n: int, rng: np.random.Generator) -> pa.Table:
    names = np.array(list(MIX))
    p = np.array(list(MIX.values()), dtype=np.float64)
    calls = names[rng.choice(len(names), n, p=p / p.sum())]
    streams = rng.integers(0, 4, n)
    return pa.Table.from_pydict(
        {
            "ts_ns": 1_700_000_000 * 10**9 + np.cumsum(rng.integers(1_000, 10_000, n)),
            "pod_uid": [f"pod{s // 2}" for s in streams],
            "namespace": ["bench"] * n,
            "pod_name": [f"name{s // 2}" for s in streams],
            "container_id": [f"ctr{s % 2}" for s in streams],
            "pid": np.full(n, 100, np.int32),
            "tid": rng.integers(100, 132, n).astype(np.int32),
            "comm": ["w"] * n,
            "nr": [syscall_number(c, Arch.X86_64) for c in calls],
            "syscall": calls,
            "arch": ["x86_64"] * n,
            "fd_kind": [None] * n,
        },
        schema=TRACE_SCHEMA,
    )


def best(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    fn()  # warm-up: caches, page faults
    times, out = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--chunk", type=int, default=16_384)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    table = synthetic_table(a.events, rng)
    spec, policy = FeatureSpec.default(), WindowPolicy.count(1000)
    n = table.num_rows
    print(f"{n} syscalls, 4 streams, 32 threads, {policy.kind} windows W={policy.size}, {spec.dim} features")

    def offline_time() -> int:
        return len(vectorize_many(list(windows_from_trace(table, WindowPolicy.time(1.0))), spec))

    def windows_only() -> int:
        return len(list(windows_from_trace(table, policy)))

    ws = list(windows_from_trace(table, policy))

    def offline() -> int:
        return len(vectorize_many(list(windows_from_trace(table, policy)), spec))

    per_stream = [
        [
            StreamChunk(s.pod_uid, s.container_id, s.ids[i : i + a.chunk], s.tids[i : i + a.chunk], ts[i : i + a.chunk])
            for i in range(0, len(s.ids), a.chunk)
        ]
        for s in chunks_from_table(table)
        if (ts := s.ts_ns) is not None
    ]
    chunks: list[StreamChunk] = []  # streams interleave at random, each stream's chunks stay in order
    while any(per_stream):
        live = [q for q in per_stream if q]
        chunks.append(live[int(rng.integers(0, len(live)))].pop(0))

    def streaming() -> int:
        b, rows = WindowBuilder(policy), 0
        for c in chunks:
            rows += len(vectorize_many(b.add(c), spec))
        return rows + len(vectorize_many(b.flush(), spec))

    env = Envelope(node="n", pod=PodRef(uid="pod0"), container_id="ctr0")
    nrs, tids = table.column("nr").to_numpy(), table.column("tid").to_numpy()
    batches = [
        SyscallBatch(
            envelope=env,
            source="replay",
            arch=Arch.X86_64,
            seq=k,
            start_ns=0,
            nr=nrs[i : i + a.chunk].tolist(),
            tid=tids[i : i + a.chunk].tolist(),
            dt_ns=list(range(len(nrs[i : i + a.chunk]))),
        )
        for k, i in enumerate(range(0, n, a.chunk))
    ]

    def decode() -> int:
        return sum(len(chunk_from_batch(b).ids) for b in batches)

    tw, nw = best(windows_only, a.repeat)
    tv, _ = best(lambda: len(vectorize_many(ws, spec)), a.repeat)
    to, _ = best(offline, a.repeat)
    tt, nt = best(offline_time, a.repeat)
    tstream, rows = best(streaming, a.repeat)
    td, _ = best(decode, a.repeat)
    print(f"windows_from_trace          {n / tw / 1e6:6.2f} M syscalls/s  ({nw} windows, {tw:.3f} s)")
    print(f"vectorize_many              {n / tv / 1e6:6.2f} M syscalls/s  ({nw / tv:,.0f} windows/s)")
    print(f"offline (windows+vectorize) {n / to / 1e6:6.2f} M syscalls/s  ({to:.3f} s)")
    print(f"offline, time windows T=1s  {n / tt / 1e6:6.2f} M syscalls/s  ({nt} windows, {tt:.3f} s)")
    print(f"WindowBuilder+vectorize     {n / tstream / 1e6:6.2f} M syscalls/s  ({rows} windows, chunks of {a.chunk})")
    print(f"chunk_from_batch            {n / td / 1e6:6.2f} M syscalls/s  ({len(batches)} batches)")


if __name__ == "__main__":
    main()
