"""Replay recorded traces as live pods: trace rows -> ``SyscallBatch`` messages (source ``replay``).

What a collector would have sent for the same syscalls: one stream per (pod, container), batches cut
at ``max_events`` or ``max_age_s`` of event time, ``seq`` contiguous per stream, syscall numbers in the
trace's architecture. Timestamps keep their spacing and can be shifted so the replay starts now
(``start_ns``), which is what a streaming consumer's event-time windows expect. Used by
``minerlens collector replay``, the end-to-end tests and the featurizer benchmarks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from minerlens_core import topics
from minerlens_core.schemas import Envelope, PodRef, SyscallBatch, TaskInfo
from minerlens_core.settings import KafkaSettings
from minerlens_core.syscalls import Arch, parse_arch, syscall_number
from minerlens_core.traces import Trace

UNKNOWN_NR = 1 << 20
"""Number used for syscall names the trace's architecture does not know (decoded as ``other``)."""


@dataclass(frozen=True)
class ReplayPod:
    """Who a replayed stream claims to be (defaults: the trace's own pod columns)."""

    uid: str
    namespace: str
    name: str
    labels: tuple[tuple[str, str], ...] = ()


def _numbers(t: pa.Table, arch: Arch) -> npt.NDArray[np.int64]:
    """The trace's ``nr`` column where present, else the name looked up in ``arch``'s table."""
    names = pc.dictionary_encode(t.column("syscall")).combine_chunks()
    lut = np.array(
        [n if (n := syscall_number(str(s), arch)) is not None else UNKNOWN_NR for s in names.dictionary.to_pylist()]
        + [UNKNOWN_NR],
        dtype=np.int64,
    )
    by_name = lut[names.indices.fill_null(len(lut) - 1).to_numpy(zero_copy_only=False)]
    nr = pc.fill_null(t.column("nr"), -1).to_numpy().astype(np.int64)
    out: npt.NDArray[np.int64] = np.where(nr >= 0, nr, by_name)
    return out


def _streams(t: pa.Table) -> Iterator[tuple[tuple[str, str], npt.NDArray[np.int64]]]:
    """Row indices of each (pod, container) stream, in first-seen order, rows in trace order."""
    pods = t.column("pod_uid").to_pylist()
    ctrs = t.column("container_id").to_pylist()
    order: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(pods, ctrs, strict=True)):
        order.setdefault(key, []).append(i)
    for key, rows in order.items():
        yield key, np.asarray(rows, dtype=np.int64)


def batches_from_trace(
    trace: Trace,
    *,
    node: str,
    cluster: str = "default",
    pod: ReplayPod | None = None,
    max_events: int = 16_384,
    max_age_s: float = 1.0,
    start_ns: int | None = None,
) -> list[SyscallBatch]:
    """Every batch a collector would have sent for ``trace`` (all streams, each stream in order).

    ``start_ns``: shift timestamps so the earliest syscall of the trace happens at ``start_ns``.
    Order-only traces (no timestamps) give batches without ``dt_ns``, cut by ``max_events`` only.
    """
    t = trace.table
    if t.num_rows == 0:
        return []
    arch = parse_arch(str(t.column("arch")[0].as_py() or trace.meta.arch or "x86_64"))
    nr_all = _numbers(t, arch)
    ts_col = t.column("ts_ns")
    timed = ts_col.null_count == 0
    ts_all = ts_col.to_numpy().astype(np.int64) if timed else None
    shift = 0 if ts_all is None or start_ns is None else start_ns - int(ts_all.min())
    tid_all = np.maximum(pc.fill_null(t.column("tid"), 0).to_numpy().astype(np.int64), 0)
    pid_all = np.maximum(pc.fill_null(t.column("pid"), 0).to_numpy().astype(np.int64), 0)
    comm_all = t.column("comm").to_pylist()
    age_ns = int(max_age_s * 1e9)
    out: list[SyscallBatch] = []
    for (pod_uid, container_id), rows in _streams(t):
        r0 = int(rows[0])
        who = pod or ReplayPod(
            pod_uid, str(t.column("namespace")[r0].as_py() or ""), str(t.column("pod_name")[r0].as_py() or "")
        )
        env_pod = PodRef(uid=who.uid, namespace=who.namespace, name=who.name, labels=dict(who.labels))
        cuts = _cuts(rows, None if ts_all is None else ts_all[rows], max_events, age_ns)
        for seq, (lo, hi) in enumerate(cuts):
            part = rows[lo:hi]
            tasks = {
                int(tid_all[i]): TaskInfo(tid=int(tid_all[i]), pid=int(pid_all[i]), comm=str(comm_all[i] or "")[:64])
                for i in part
            }
            start = end = None
            dt: list[int] | None = None
            if ts_all is not None:
                ts = ts_all[part] + shift
                start, end = int(ts.min()), int(ts.max())
                dt = (ts - start).tolist()
            out.append(
                SyscallBatch(
                    envelope=Envelope(cluster=cluster, node=node, pod=env_pod, container_id=container_id),
                    source="replay",
                    arch=arch,
                    seq=seq,
                    start_ns=start,
                    end_ns=end,
                    nr=nr_all[part].tolist(),
                    tid=tid_all[part].tolist(),
                    dt_ns=dt,
                    tasks=list(tasks.values()),
                )
            )
    return out


def _cuts(
    rows: npt.NDArray[np.int64], ts: npt.NDArray[np.int64] | None, max_events: int, age_ns: int
) -> list[tuple[int, int]]:
    cuts: list[tuple[int, int]] = []
    lo, n = 0, len(rows)
    while lo < n:
        hi = min(lo + max_events, n)
        if ts is not None:
            # the batch closes when it would span more than max_age of event time
            hi = min(hi, lo + int(np.searchsorted(ts[lo:hi], ts[lo] + age_ns, side="left")) or lo + 1)
        cuts.append((lo, hi))
        lo = hi
    return cuts


def interleave(streams: Sequence[list[SyscallBatch]]) -> list[SyscallBatch]:
    """Batches of several replayed traces merged by start time (as one node's collector would send them)."""
    merged = [b for s in streams for b in s]
    merged.sort(key=lambda b: (b.start_ns or 0, b.envelope.key, b.seq))
    return merged


async def publish(
    batches: Sequence[SyscallBatch], kafka: KafkaSettings, *, topic: str = topics.SYSCALLS, speed: float = 0.0
) -> int:
    """Send ``batches`` in order; ``speed`` > 0 paces them by event time (1.0 = real time). Returns the count."""
    from minerlens_core.kafka import make_producer, message_headers

    producer = make_producer(kafka)
    await producer.start()
    try:
        t0 = time.monotonic()
        first = next((b.start_ns for b in batches if b.start_ns is not None), None)
        futures = []
        for b in batches:
            if speed > 0 and first is not None and b.end_ns is not None:
                due = (b.end_ns - first) / 1e9 / speed - (time.monotonic() - t0)
                if due > 0:
                    await asyncio.sleep(due)
            futures.append(
                await producer.send(topic, b.model_dump_json().encode(), key=b.envelope.key, headers=message_headers(b))
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(batches)
