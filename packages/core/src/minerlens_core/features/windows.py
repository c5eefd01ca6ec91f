"""Cutting per-(pod, container) syscall streams into windows, offline and incrementally.

``windows_from_trace`` (training, whole trace files) and ``WindowBuilder`` (the streaming
featurizer, chunk by chunk) run the same per-stream state machine, so they emit identical windows
for any chunking of the same stream (property-tested). Timestamps are event time: a stream whose
timestamps step backwards (per-CPU merge) keeps the latest slot seen, i.e. late events join the
current time slot.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from minerlens_core.features.spec import WindowPolicy
from minerlens_core.features.vocabulary import IdArray, ids_from_names, ids_from_nr
from minerlens_core.schemas.envelope import NODE_POD_UID
from minerlens_core.schemas.events import SyscallBatch
from minerlens_core.traces.model import Trace

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
StreamKey = tuple[str, str]
"""(pod_uid, container_id); container_id is "" when the source does not know containers."""


@dataclass(frozen=True, slots=True, eq=False)
class Window:
    """A run of consecutive syscalls of one (pod, container) stream: the unit that gets a verdict.

    ``first_row``/``last_row`` (inclusive) are positions in the stream (= trace rows when the trace
    holds one stream). ``index`` is the k-th stride (count windows) or the k-th ``seconds`` slot since
    the Unix epoch (time windows). ``[start_ns, end_ns)`` is the span rates are computed over:
    first event to just past the last (count) or the slot (time); None without timestamps.
    ``complete`` is False for trailing partial windows and a stream's first time slot.
    """

    pod_uid: str
    namespace: str
    pod_name: str
    container_id: str
    index: int
    first_row: int
    last_row: int
    start_ns: int | None
    end_ns: int | None
    ids: IdArray
    tids: I32
    ts_ns: I64 | None
    complete: bool = True

    @property
    def key(self) -> StreamKey:
        return (self.pod_uid, self.container_id)

    @property
    def count(self) -> int:
        return len(self.ids)

    @property
    def has_time(self) -> bool:
        return self.ts_ns is not None

    @property
    def dt_ns(self) -> I64 | None:
        """Inter-arrival times (ns) between consecutive syscalls, when time is known."""
        return None if self.ts_ns is None else np.diff(self.ts_ns)


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """The next syscalls of one stream: vocabulary ids, tids and Unix-ns timestamps (-1/None: unknown)."""

    pod_uid: str
    container_id: str
    ids: IdArray
    tids: I32
    ts_ns: I64 | None = None
    namespace: str = ""
    pod_name: str = ""

    @property
    def key(self) -> StreamKey:
        return (self.pod_uid, self.container_id)


def chunk_from_batch(batch: SyscallBatch) -> StreamChunk:
    """A collector ``SyscallBatch`` as a chunk: numbers mapped through its arch, ts = start + dt."""
    pod = batch.envelope.pod
    ts = None
    if batch.dt_ns is not None and batch.start_ns is not None:
        ts = np.asarray(batch.dt_ns, dtype=np.int64) + batch.start_ns
    return StreamChunk(
        pod_uid=pod.uid if pod else NODE_POD_UID,
        container_id=batch.envelope.container_id,
        ids=ids_from_nr(batch.nr, batch.arch),
        tids=np.asarray(batch.tid, dtype=np.int32),
        ts_ns=ts,
        namespace=pod.namespace if pod else "",
        pod_name=pod.name if pod else "",
    )


class _Stream:
    """Windowing state of one stream: buffered tail, position, and the open slot/next stride."""

    def __init__(self, policy: WindowPolicy, head: StreamChunk) -> None:
        self.p, self.head = policy, head
        self.parts: list[tuple[IdArray, I32, I64]] = []
        self.base = 0  # stream position of the first buffered event
        self.seen = 0  # events pushed so far
        self.next_start = 0  # count: position where the next window starts
        self.covered = 0  # count: end of the last emitted window
        self.slot = -1  # time: the open slot, -1 before the first event
        self.floor = -1  # time: no event goes to a slot below this
        self.first_slot = True

    def _buffer(self) -> tuple[IdArray, I32, I64]:
        if not self.parts:
            return np.zeros(0, np.int16), np.zeros(0, np.int32), np.zeros(0, np.int64)
        if len(self.parts) > 1:
            ids, tids, ts = zip(*self.parts, strict=True)
            self.parts = [(np.concatenate(ids), np.concatenate(tids), np.concatenate(ts))]
        return self.parts[0]

    def _window(self, index: int, lo: int, hi: int, complete: bool, slot: bool = False) -> Window:
        b_ids, b_tids, b_ts = self._buffer()
        ids, tids, ts = b_ids[lo:hi], b_tids[lo:hi], b_ts[lo:hi]
        known = bool(hi > lo and ts.min() >= 0)
        start, end = (int(ts[0]), int(ts[-1]) + 1) if known else (None, None)
        if slot:
            start, end = index * self.p.slot_ns, (index + 1) * self.p.slot_ns
        h = self.head
        return Window(
            h.pod_uid, h.namespace, h.pod_name, h.container_id, index, self.base + lo, self.base + hi - 1,
            start, end, ids, tids, ts if known else None, complete,
        )  # fmt: skip

    def push(self, ids: IdArray, tids: I32, ts: I64) -> list[Window]:
        if self.p.kind == "time":
            return self._push_time(ids, tids, ts)
        self.parts.append((ids, tids, ts))
        self.seen += len(ids)
        size, stride = self.p.size or 0, self.p.stride or 0
        out = []
        while self.next_start + size <= self.seen:
            lo = self.next_start - self.base
            out.append(self._window(self.next_start // stride, lo, lo + size, True))
            self.covered = self.next_start + size
            self.next_start += stride
        self._drop(min(self.next_start, self.seen))
        return out

    def _drop(self, upto: int) -> None:
        """Forget buffered events before stream position ``upto``."""
        if upto > self.base:
            ids, tids, ts = self._buffer()
            k = upto - self.base
            self.parts = [(ids[k:], tids[k:], ts[k:])]
            self.base = upto

    def _push_time(self, ids: IdArray, tids: I32, ts: I64) -> list[Window]:
        if len(ts) and ts.min() < 0:
            msg = f"time windows need timestamps; stream {self.head.key} has events without"
            raise ValueError(msg)
        slots = np.maximum.accumulate(np.maximum(ts // self.p.slot_ns, max(self.floor, self.slot)))
        cuts = [0, *(np.flatnonzero(np.diff(slots)) + 1).tolist(), len(slots)]
        out = []
        for lo, hi in itertools.pairwise(cuts):
            if hi == lo:
                continue
            if int(slots[lo]) != self.slot:
                out += self._close_slot(self.seen - self.base)
                self.slot = int(slots[lo])
            self.parts.append((ids[lo:hi], tids[lo:hi], ts[lo:hi]))
            self.seen += hi - lo
        return out

    def _close_slot(self, n: int, complete: bool = True) -> list[Window]:
        out = []
        if n >= (self.p.min_fill or 1):
            out.append(self._window(self.slot, 0, n, complete and not self.first_slot, slot=True))
        if n:
            self.first_slot = False
        self._drop(self.base + n)
        return out

    def advance(self, watermark_ns: int) -> list[Window]:
        """Time windows: close the open slot if it ended at or before ``watermark_ns``."""
        if self.p.kind != "time" or self.slot < 0 or (self.slot + 1) * self.p.slot_ns > watermark_ns:
            return []
        self.floor = watermark_ns // self.p.slot_ns
        return self._close_slot(self.seen - self.base)

    def finish(self) -> list[Window]:
        """End of stream: the trailing partial window, if it is worth emitting."""
        if self.p.kind == "time":
            return self._close_slot(self.seen - self.base, complete=False)
        n = self.seen - self.next_start
        if n >= (self.p.min_fill or 1) and self.seen > self.covered:
            lo = self.next_start - self.base
            return [self._window(self.next_start // (self.p.stride or 1), lo, lo + n, False)]
        return []


def chunks_from_table(table: pa.Table) -> Iterator[StreamChunk]:
    """Split trace rows (``TRACE_SCHEMA``) into one chunk per (pod, container), in first-seen order."""
    if table.num_rows == 0:
        return
    pods = pc.dictionary_encode(table.column("pod_uid")).combine_chunks()
    ctrs = pc.dictionary_encode(table.column("container_id")).combine_chunks()
    nkeys = len(pods.dictionary) * len(ctrs.dictionary)
    key = pods.indices.to_numpy().astype(np.int64) * len(ctrs.dictionary) + ctrs.indices.to_numpy()
    ids = ids_from_names(table.column("syscall"))
    tids = table.column("tid").to_numpy().astype(np.int32)
    ts = pc.fill_null(table.column("ts_ns"), -1).to_numpy().astype(np.int64)
    if nkeys == 1:
        groups = [np.arange(len(key))]
    else:  # stable sort on small ints is a radix sort: rows of each key stay in trace order
        order = np.argsort(key.astype(np.int16 if nkeys < 1 << 15 else np.int64), kind="stable")
        counts = np.bincount(key, minlength=nkeys)
        groups = [g for g in np.split(order, np.cumsum(counts)[:-1]) if len(g)]
        groups.sort(key=lambda g: int(g[0]))
    text = {c: table.column(c) for c in ("pod_uid", "container_id", "namespace", "pod_name")}
    for rows in groups:
        r0 = int(rows[0])
        s = {c: str(col[r0].as_py() or "") for c, col in text.items()}
        if nkeys == 1:
            yield StreamChunk(ids=ids, tids=tids, ts_ns=ts, **s)
        else:
            yield StreamChunk(ids=ids[rows], tids=tids[rows], ts_ns=ts[rows], **s)


def _cols(c: StreamChunk) -> tuple[IdArray, I32, I64]:
    ts = np.full(len(c.ids), -1, np.int64) if c.ts_ns is None else np.asarray(c.ts_ns, np.int64)
    return np.asarray(c.ids, np.int16), np.asarray(c.tids, np.int32), ts


def windows_from_trace(trace: Trace | pa.Table, policy: WindowPolicy | None = None) -> Iterator[Window]:
    """All windows of a trace, stream by stream (first-seen order), each stream in order."""
    policy = policy or WindowPolicy.count()
    for chunk in chunks_from_table(trace.table if isinstance(trace, Trace) else trace):
        s = _Stream(policy, chunk)
        yield from s.push(*_cols(chunk))
        yield from s.finish()


class WindowBuilder:
    """Incremental windowing of many interleaved streams; emits each window as soon as it is complete.

    Feed ``add`` with chunks (or ``SyscallBatch`` messages) of any size; call ``flush`` when a stream
    (or everything) ends to get trailing windows and forget the state, and ``advance`` with the event-
    time watermark to close time slots of streams that went quiet.
    """

    def __init__(self, policy: WindowPolicy | None = None) -> None:
        self.policy = policy or WindowPolicy.count()
        self._streams: dict[StreamKey, _Stream] = {}

    def add(self, chunk: StreamChunk | SyscallBatch) -> list[Window]:
        if isinstance(chunk, SyscallBatch):
            chunk = chunk_from_batch(chunk)
        s = self._streams.get(chunk.key)
        if s is None:
            s = self._streams[chunk.key] = _Stream(self.policy, chunk)
        return s.push(*_cols(chunk))

    def advance(self, watermark_ns: int) -> list[Window]:
        return [w for s in self._streams.values() for w in s.advance(watermark_ns)]

    def flush(self, key: StreamKey | None = None) -> list[Window]:
        keys = list(self._streams) if key is None else [key] if key in self._streams else []
        return [w for k in keys for w in self._streams.pop(k).finish()]

    def pending(self) -> dict[StreamKey, int]:
        """Buffered (not yet emitted) events per stream."""
        return {k: s.seen - s.base for k, s in self._streams.items()}
