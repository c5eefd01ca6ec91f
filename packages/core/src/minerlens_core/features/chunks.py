"""A stream's data: its events as columns (``Cols``), the chunks they arrive in (``StreamChunk``: from a
collector ``SyscallBatch``, ``chunk_from_batch``, or from the rows of a trace, ``chunks_from_table``), the
windows cut from them (``Window``) and the canonical order of a stream's events and resource samples
(``merged``). The windowing itself: ``stream`` (one stream) and ``windows`` (many).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from minerlens_core.features.resources import ResourceUse
from minerlens_core.features.vocabulary import IdArray, ids_from_names, ids_from_nr
from minerlens_core.schemas.envelope import NODE_POD_UID
from minerlens_core.schemas.events import SyscallBatch
from minerlens_core.schemas.resources import ResourceSnapshot

I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
StreamKey = tuple[str, str]
"""(pod_uid, container_id); container_id is "" when the source does not know containers."""


@dataclass(frozen=True, slots=True)
class Cols:
    """Per-event columns of a stream: vocabulary ids, tids, Unix-ns times (-1: unknown), process ids and
    ``FdKind`` codes of the fd argument (-1: the source could not tell)."""

    ids: IdArray
    tids: I32
    ts: I64
    pids: I32
    fdk: I8

    def __len__(self) -> int:
        return len(self.ids)

    def slice(self, lo: int, hi: int) -> Cols:
        return Cols(self.ids[lo:hi], self.tids[lo:hi], self.ts[lo:hi], self.pids[lo:hi], self.fdk[lo:hi])

    def select(self, mask: npt.NDArray[np.bool_]) -> Cols:
        return Cols(self.ids[mask], self.tids[mask], self.ts[mask], self.pids[mask], self.fdk[mask])

    @staticmethod
    def empty() -> Cols:
        return Cols(
            np.zeros(0, np.int16),
            np.zeros(0, np.int32),
            np.zeros(0, np.int64),
            np.zeros(0, np.int32),
            np.zeros(0, np.int8),
        )

    @staticmethod
    def concat(parts: Sequence[Cols]) -> Cols:
        if not parts:
            return Cols.empty()
        if len(parts) == 1:
            return parts[0]
        return Cols(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("ids", "tids", "ts", "pids", "fdk")))


@dataclass(frozen=True, slots=True, eq=False)
class Window:
    """A run of consecutive syscalls of one (pod, container) stream: the unit that gets a verdict.

    ``first_row``/``last_row`` (inclusive) are positions in the stream (= trace rows when the trace
    holds one stream). ``index`` is the k-th stride (count windows) or the k-th ``seconds`` slot since
    the Unix epoch (time windows). ``[start_ns, end_ns)`` is the span rates are computed over:
    first event to just past the last (count) or the slot (time); None without timestamps.
    ``complete`` is False for trailing partial windows and a stream's first time slot.
    ``pid`` is None for the window of the whole stream and the process id of a per-process window;
    ``comm``/``exe`` name that process (for a stream window: the process that used the most CPU, when
    known). ``res`` is what the pod (or the process) used over the window, None without samples.
    ``fdk`` holds each call's ``FdKind`` code, None when the source could not tell.
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
    pids: I32 | None = None
    fdk: I8 | None = None
    pid: int | None = None
    comm: str = ""
    exe: str = ""
    res: ResourceUse | None = None

    @property
    def key(self) -> StreamKey:
        return (self.pod_uid, self.container_id)

    @property
    def count(self) -> int:
        return len(self.ids)

    @property
    def has_time(self) -> bool:
        return self.ts_ns is not None or (self.count == 0 and self.start_ns is not None)

    @property
    def dt_ns(self) -> I64 | None:
        """Inter-arrival times (ns) between consecutive syscalls, when time is known."""
        return None if self.ts_ns is None else np.diff(self.ts_ns)


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """The next syscalls of one stream: vocabulary ids, tids and Unix-ns timestamps (-1/None: unknown).

    ``pids`` (None: the tids) and ``fdk`` (None: unknown) are optional; ``comms`` names processes.
    """

    pod_uid: str
    container_id: str
    ids: IdArray
    tids: I32
    ts_ns: I64 | None = None
    namespace: str = ""
    pod_name: str = ""
    pids: I32 | None = None
    fdk: I8 | None = None
    comms: tuple[tuple[int, str], ...] = ()

    @property
    def key(self) -> StreamKey:
        return (self.pod_uid, self.container_id)

    def cols(self) -> Cols:
        n = len(self.ids)
        ts = np.full(n, -1, np.int64) if self.ts_ns is None else np.asarray(self.ts_ns, np.int64)
        tids = np.asarray(self.tids, np.int32)
        pids = tids if self.pids is None else np.asarray(self.pids, np.int32)
        fdk = np.full(n, -1, np.int8) if self.fdk is None else np.asarray(self.fdk, np.int8)
        return Cols(np.asarray(self.ids, np.int16), tids, ts, pids, fdk)


def _process_names(tids: Sequence[int], pids: Sequence[int], comms: Sequence[str]) -> tuple[tuple[int, str], ...]:
    """pid -> comm: the last name of its main thread (tid == pid) when present, else of its last thread seen."""
    out: dict[int, str] = {}
    main: set[int] = set()
    for t, p, c in zip(tids, pids, comms, strict=True):
        if not c:
            continue
        if t == p:
            out[p] = c
            main.add(p)
        elif p not in main:
            out[p] = c
    return tuple(sorted(out.items()))


def chunk_from_batch(batch: SyscallBatch) -> StreamChunk:
    """A collector ``SyscallBatch`` as a chunk: numbers mapped through its arch, ts = start + dt."""
    pod = batch.envelope.pod
    ts = None
    if batch.dt_ns is not None and batch.start_ns is not None:
        ts = np.asarray(batch.dt_ns, dtype=np.int64) + batch.start_ns
    tids = np.asarray(batch.tid, dtype=np.int32)
    pids = tids
    if batch.tasks:
        t_tid = np.fromiter((t.tid for t in batch.tasks), np.int64, len(batch.tasks))
        t_pid = np.fromiter((t.pid for t in batch.tasks), np.int64, len(batch.tasks))
        order = np.argsort(t_tid, kind="stable")
        t_tid, t_pid = t_tid[order], t_pid[order]
        pos = np.clip(np.searchsorted(t_tid, tids), 0, len(t_tid) - 1)
        pids = np.where(t_tid[pos] == tids, t_pid[pos], tids).astype(np.int32)
    return StreamChunk(
        pod_uid=pod.uid if pod else NODE_POD_UID,
        container_id=batch.envelope.container_id,
        ids=ids_from_nr(batch.nr, batch.arch),
        tids=tids,
        ts_ns=ts,
        namespace=pod.namespace if pod else "",
        pod_name=pod.name if pod else "",
        pids=pids,
        fdk=None if batch.fd_kind is None else np.asarray(batch.fd_kind, dtype=np.int8),
        comms=_process_names([t.tid for t in batch.tasks], [t.pid for t in batch.tasks], [t.comm for t in batch.tasks]),
    )


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
    pids = table.column("pid").to_numpy().astype(np.int32)
    ts = pc.fill_null(table.column("ts_ns"), -1).to_numpy().astype(np.int64)
    fdcol = table.column("fd_kind") if "fd_kind" in table.schema.names else None
    fdk = (
        None if fdcol is None or fdcol.null_count == len(fdcol) else pc.fill_null(fdcol, -1).to_numpy().astype(np.int8)
    )
    comm = table.column("comm")
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
        g_tid, g_pid = (tids, pids) if nkeys == 1 else (tids[rows], pids[rows])
        # the last row of each (pid, tid) names the processes (a process renamed by exec keeps its new name)
        pair = (g_pid.astype(np.int64) << 32) | g_tid.astype(np.int64)
        _, from_end = np.unique(pair[::-1], return_index=True)
        first = np.sort(len(pair) - 1 - from_end)
        src = rows[first] if nkeys != 1 else first
        names = _process_names(
            g_tid[first].tolist(), g_pid[first].tolist(), [str(x or "") for x in comm.take(pa.array(src)).to_pylist()]
        )
        if nkeys == 1:
            yield StreamChunk(ids=ids, tids=tids, ts_ns=ts, pids=pids, fdk=fdk, comms=names, **s)
        else:
            yield StreamChunk(
                ids=ids[rows], tids=tids[rows], ts_ns=ts[rows], pids=pids[rows],
                fdk=None if fdk is None else fdk[rows], comms=names, **s,
            )  # fmt: skip


def merged(chunk: StreamChunk, samples: Sequence[ResourceSnapshot]) -> Iterator[Cols | ResourceSnapshot]:
    """A stream's events and samples in the canonical order: a sample at ``t`` after every event whose
    timestamp (running maximum) is at or before ``t``, before the first later one. Replays follow it."""
    c = chunk.cols()
    if not samples:
        yield c
        return
    run_max = np.maximum.accumulate(c.ts) if len(c) else c.ts
    lo = 0
    for s in sorted(samples, key=lambda x: x.ts_ns):
        hi = int(np.searchsorted(run_max, s.ts_ns, side="right")) if len(c) else 0
        if hi > lo:
            yield c.slice(lo, hi)
            lo = hi
        yield s
    if lo < len(c):
        yield c.slice(lo, len(c))


def empty_chunk(key: StreamKey, namespace: str = "", pod_name: str = "") -> StreamChunk:
    return StreamChunk(
        key[0], key[1], np.zeros(0, np.int16), np.zeros(0, np.int32), namespace=namespace, pod_name=pod_name
    )
