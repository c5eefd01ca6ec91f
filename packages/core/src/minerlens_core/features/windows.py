"""Cutting per-(pod, container) syscall streams into windows, offline and incrementally.

``windows_from_trace`` (training, whole trace files) and ``WindowBuilder`` (the streaming
featurizer, chunk by chunk) run the same per-stream state machine, so they emit identical windows
for any chunking of the same stream (property-tested). Timestamps are event time: a stream whose
timestamps step backwards (per-CPU merge) keeps the latest slot seen, i.e. late events join the
current time slot.

Resource samples (``ResourceSnapshot``: the stream's cgroup and processes, cumulative counters) are
part of a stream too: ``WindowBuilder.add_sample`` (and, offline, the trace's ``resources`` merged in
time order) moves time slots like an event does, and every window carries what its pod used
(``Window.res``). A time slot in which the pod burnt at least ``min_cpu_cores`` is a window even
without a single syscall: a miner whose hashing threads never enter the kernel stays visible.

With ``WindowPolicy.per_process`` every window of a stream that held two or more processes is
followed by one window per process (the same slot restricted to that process's calls and CPU), so
a miner hidden in a busy pod is judged on its own behaviour and named.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from minerlens_core.features.resources import ResourceUse, process_cpu, summarise
from minerlens_core.features.resources import bracket as _bracket
from minerlens_core.features.spec import WindowPolicy
from minerlens_core.features.vocabulary import IdArray, ids_from_names, ids_from_nr
from minerlens_core.schemas.envelope import NODE_POD_UID
from minerlens_core.schemas.events import SyscallBatch
from minerlens_core.schemas.resources import ResourceSnapshot
from minerlens_core.traces.model import StreamSample, Trace

I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
StreamKey = tuple[str, str]
"""(pod_uid, container_id); container_id is "" when the source does not know containers."""

MAX_SAMPLES = 1024
"""Resource samples a stream keeps while no window consumes them (older ones are dropped)."""
MAX_NAMES = 4096
"""Process names a stream remembers."""


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


@dataclass
class StreamState:
    """Everything a stream's windowing depends on besides its buffered events (``WindowBuilder.state``).

    ``positions``: base (stream position of the first buffered event), seen (events pushed), next_start
    and covered (count windows), slot, floor and first_slot (time windows).
    """

    positions: dict[str, int]
    samples: list[ResourceSnapshot] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)

    def resumed(self, policy: WindowPolicy, trailing_emitted: bool) -> StreamState:
        """The state of a stream that was flushed (idle) and may come back: no window id is ever reused.

        Count windows continue at the next stride boundary past everything emitted (no buffered events);
        time windows never reopen the slot that was flushed.
        """
        c = dict(self.positions)
        if policy.kind == "time":
            c["floor"] = max(c["floor"], c["slot"] + 1)
            c["base"] = c["seen"]
            c["first_slot"] = 0
        else:
            stride = policy.stride or 1
            nxt = c["next_start"] + (stride if trailing_emitted else 0)
            resume = -(-max(c["seen"], nxt) // stride) * stride
            c.update(base=resume, seen=resume, next_start=resume, covered=resume)
        return StreamState(c, self.samples[-1:], dict(self.names))


POSITIONS = ("base", "seen", "next_start", "covered", "slot", "floor", "first_slot")


class _Stream:
    """Windowing state of one stream: buffered tail, position, open slot/next stride, samples, names."""

    def __init__(self, policy: WindowPolicy, head: StreamChunk) -> None:
        self.p, self.head = policy, head
        self.parts: list[Cols] = []
        self.base = 0  # stream position of the first buffered event
        self.seen = 0  # events pushed so far
        self.next_start = 0  # count: position where the next window starts
        self.covered = 0  # count: end of the last emitted window
        self.slot = -1  # time: the open slot, -1 before the first event
        self.floor = -1  # time: no event goes to a slot below this
        self.first_slot = True
        self.samples: list[ResourceSnapshot] = []
        self.names: dict[int, str] = {}

    # --- state ----------------------------------------------------------------------------------

    def state(self) -> StreamState:
        pos = {f: int(getattr(self, f)) for f in POSITIONS}
        return StreamState(pos, list(self.samples), dict(self.names))

    def load(self, st: StreamState, events: Cols | None) -> None:
        for f in POSITIONS:
            setattr(self, f, bool(st.positions[f]) if f == "first_slot" else int(st.positions[f]))
        n = 0 if events is None else len(events)
        if n != self.seen - self.base:
            msg = f"stream {self.head.key}: {n} buffered events for positions [{self.base}, {self.seen})"
            raise ValueError(msg)
        self.parts = [events] if events is not None and n else []
        self.samples = sorted(st.samples, key=lambda s: s.ts_ns)[-MAX_SAMPLES:]
        self.names = dict(st.names)

    def buffered(self) -> Cols:
        return self._buffer()

    # --- events ---------------------------------------------------------------------------------

    def _buffer(self) -> Cols:
        if len(self.parts) > 1:
            self.parts = [Cols.concat(self.parts)]
        return self.parts[0] if self.parts else Cols.empty()

    def name(self, comms: tuple[tuple[int, str], ...]) -> None:
        for pid, comm in comms:
            self.names[pid] = comm
        if len(self.names) > MAX_NAMES:
            for pid in list(self.names)[: len(self.names) - MAX_NAMES]:
                del self.names[pid]

    def push(self, c: Cols) -> list[Window]:
        if self.p.kind == "time":
            return self._push_time(c)
        self.parts.append(c)
        self.seen += len(c)
        size, stride = self.p.size or 0, self.p.stride or 0
        out = []
        while self.next_start + size <= self.seen:
            lo = self.next_start - self.base
            out += self._windows(self.next_start // stride, lo, lo + size, True)
            self.covered = self.next_start + size
            self.next_start += stride
        self._drop(min(self.next_start, self.seen))
        return out

    def _drop(self, upto: int) -> None:
        """Forget buffered events before stream position ``upto`` (and samples no later window needs)."""
        if upto > self.base:
            buf = self._buffer()
            self.parts = [buf.slice(upto - self.base, len(buf))]
            self.base = upto
        if self.p.kind == "count" and self.samples:
            buf = self._buffer()
            known = buf.ts[buf.ts >= 0]
            if len(known):
                self._prune_samples(int(known[0]))

    def _prune_samples(self, before_ns: int) -> None:
        """Keep the latest sample at or before ``before_ns`` (the next window's anchor) and every later one."""
        times = [s.ts_ns for s in self.samples]
        k = bisect.bisect_right(times, before_ns) - 1
        if k > 0:
            del self.samples[:k]

    def _slot_of(self, ts: I64) -> I64:
        return np.maximum.accumulate(np.maximum(ts // self.p.slot_ns, max(self.floor, self.slot)))

    def _push_time(self, c: Cols) -> list[Window]:
        if len(c.ts) and c.ts.min() < 0:
            msg = f"time windows need timestamps; stream {self.head.key} has events without"
            raise ValueError(msg)
        slots = self._slot_of(c.ts)
        cuts = [0, *(np.flatnonzero(np.diff(slots)) + 1).tolist(), len(slots)]
        out = []
        for lo, hi in itertools.pairwise(cuts):
            if hi == lo:
                continue
            if int(slots[lo]) != self.slot:
                out += self._close_slot(self.seen - self.base)
                self.slot = int(slots[lo])
            self.parts.append(c.slice(lo, hi))
            self.seen += hi - lo
        return out

    # --- samples --------------------------------------------------------------------------------

    def add_sample(self, s: ResourceSnapshot) -> list[Window]:
        """A resource sample of the stream; for time windows it moves the slot like an event at ``s.ts_ns``."""
        out: list[Window] = []
        if self.p.kind == "time":
            slot = max(s.ts_ns // self.p.slot_ns, self.floor, self.slot)
            if slot != self.slot:
                out += self._close_slot(self.seen - self.base)
                self.slot = slot
        times = [x.ts_ns for x in self.samples]
        self.samples.insert(bisect.bisect_right(times, s.ts_ns), s)
        if len(self.samples) > MAX_SAMPLES:
            del self.samples[: len(self.samples) - MAX_SAMPLES]
        self.name(tuple((p.pid, p.comm) for p in s.processes if p.comm))
        return out

    # --- windows --------------------------------------------------------------------------------

    def _close_slot(self, n: int, complete: bool = True) -> list[Window]:
        out = []
        if self.slot >= 0:
            out = self._windows(self.slot, 0, n, complete and not self.first_slot, slot=True)
            if n or out:
                self.first_slot = False
            self._drop(self.base + n)
            self._prune_samples((self.slot + 1) * self.p.slot_ns - 1)
        return out

    def _windows(self, index: int, lo: int, hi: int, complete: bool, slot: bool = False) -> list[Window]:
        """The stream window over buffered events [lo, hi), and its per-process windows; [] when too small."""
        c = self._buffer().slice(lo, hi)
        n = len(c)
        known = bool(n and c.ts.min() >= 0)
        # first to just past the last event; min/max: a stream whose time steps back must not end before it starts
        start, end = (int(c.ts.min()), int(c.ts.max()) + 1) if known else (None, None)
        if slot:
            start, end = index * self.p.slot_ns, (index + 1) * self.p.slot_ns
        res = summarise(self.samples, start, end) if self.samples and start is not None and end is not None else None
        min_cpu = self.p.min_cpu_cores
        busy = res is not None and res.cpu_cores >= min_cpu
        if n < (self.p.min_fill or 1) and not (slot and busy):
            return []
        top = res.top if res is not None else None
        h = self.head
        w = Window(
            h.pod_uid, h.namespace, h.pod_name, h.container_id, index, self.base + lo, self.base + hi - 1,
            start, end, c.ids, c.tids, c.ts if known else None, complete,
            pids=c.pids, fdk=c.fdk if n and c.fdk.min() >= 0 else None,
            comm=top.comm if top else "", exe=top.exe if top else "", res=res,
        )  # fmt: skip
        if not self.p.per_process:
            return [w]
        return [w, *self._process_windows(w, c)]

    def _process_windows(self, w: Window, c: Cols) -> list[Window]:
        events: dict[int, int] = {}
        if len(c):
            u, k = np.unique(c.pids, return_counts=True)
            events = dict(zip(u.tolist(), k.tolist(), strict=True))
        cpu: dict[int, float] = {}
        exes: dict[int, str] = {}
        if w.start_ns is not None and w.end_ns is not None and self.samples:
            b = _bracket(self.samples, w.start_ns, w.end_ns)
            if b is not None:
                cpu = process_cpu(b[0], b[1])
                exes = {p.pid: p.exe for p in b[1].processes}
        min_cpu = self.p.min_cpu_cores
        # pid 0 is no process (a trace without thread ids): its events count in the stream window only
        active = {p for p in set(events) | {p for p, x in cpu.items() if x >= min_cpu} if p >= 1}
        if len(active) < 2:
            return []

        def rank(pid: int) -> tuple[float, int, int]:
            x = cpu.get(pid, math.nan)
            return (-(x if not math.isnan(x) else 0.0), -events.get(pid, 0), pid)

        out = []
        for pid in sorted(active, key=rank)[: self.p.max_processes]:
            sub = c.select(c.pids == pid) if len(c) else c
            res = (
                summarise(self.samples, w.start_ns, w.end_ns, pid=pid)
                if w.start_ns is not None and w.end_ns is not None and self.samples
                else None
            )
            known = w.ts_ns is not None
            out.append(
                Window(
                    w.pod_uid, w.namespace, w.pod_name, w.container_id, w.index, w.first_row, w.last_row,
                    w.start_ns, w.end_ns, sub.ids, sub.tids, sub.ts if known else None, w.complete,
                    pids=sub.pids, fdk=sub.fdk if w.fdk is not None else None, pid=pid,
                    comm=self.names.get(pid, ""), exe=exes.get(pid, ""), res=res,
                )
            )  # fmt: skip
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
            return self._windows(self.next_start // (self.p.stride or 1), lo, lo + n, False)
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


def _samples_by_stream(resources: Sequence[StreamSample]) -> dict[StreamKey, list[ResourceSnapshot]]:
    out: dict[StreamKey, list[ResourceSnapshot]] = {}
    for r in resources:
        out.setdefault((r.pod_uid, r.container_id), []).append(r.sample)
    return out


def windows_from_trace(trace: Trace | pa.Table, policy: WindowPolicy | None = None) -> Iterator[Window]:
    """All windows of a trace, stream by stream (first-seen order), each stream in order.

    A ``Trace``'s resource samples join their streams in time order (``merged``); a bare table has none.
    Streams that have samples but no syscall at all still get their CPU-only time windows.
    """
    policy = policy or WindowPolicy.count()
    table = trace.table if isinstance(trace, Trace) else trace
    samples = _samples_by_stream(trace.resources) if isinstance(trace, Trace) else {}
    chunks = list(chunks_from_table(table))
    known = {c.key for c in chunks}
    chunks += [_empty_chunk(k) for k in samples if k not in known]
    for chunk in chunks:
        s = _Stream(policy, chunk)
        s.name(chunk.comms)
        for part in merged(chunk, samples.get(chunk.key, [])):
            yield from s.push(part) if isinstance(part, Cols) else s.add_sample(part)
        yield from s.finish()


def _empty_chunk(key: StreamKey, namespace: str = "", pod_name: str = "") -> StreamChunk:
    return StreamChunk(
        key[0], key[1], np.zeros(0, np.int16), np.zeros(0, np.int32), namespace=namespace, pod_name=pod_name
    )


class WindowBuilder:
    """Incremental windowing of many interleaved streams; emits each window as soon as it is complete.

    Feed ``add`` with chunks (or ``SyscallBatch`` messages) of any size and ``add_sample`` with the
    streams' resource samples; call ``flush`` when a stream (or everything) ends to get trailing windows
    and forget the state, and ``advance`` with the event-time watermark to close time slots of streams
    that went quiet. ``state``/``buffered``/``restore`` persist and reinstall a stream exactly.
    """

    def __init__(self, policy: WindowPolicy | None = None) -> None:
        self.policy = policy or WindowPolicy.count()
        self._streams: dict[StreamKey, _Stream] = {}

    def _stream(self, head: StreamChunk) -> _Stream:
        s = self._streams.get(head.key)
        if s is None:
            s = self._streams[head.key] = _Stream(self.policy, head)
        return s

    def add(self, chunk: StreamChunk | SyscallBatch) -> list[Window]:
        if isinstance(chunk, SyscallBatch):
            chunk = chunk_from_batch(chunk)
        s = self._stream(chunk)
        s.name(chunk.comms)
        return s.push(chunk.cols())

    def add_sample(
        self, key: StreamKey, sample: ResourceSnapshot, namespace: str = "", pod_name: str = ""
    ) -> list[Window]:
        return self._stream(_empty_chunk(key, namespace, pod_name)).add_sample(sample)

    def advance(self, watermark_ns: int) -> list[Window]:
        return [w for s in self._streams.values() for w in s.advance(watermark_ns)]

    def flush(self, key: StreamKey | None = None) -> list[Window]:
        keys = list(self._streams) if key is None else [key] if key in self._streams else []
        return [w for k in keys for w in self._streams.pop(k).finish()]

    def pending(self) -> dict[StreamKey, int]:
        """Buffered (not yet emitted) events per stream."""
        return {k: s.seen - s.base for k, s in self._streams.items()}

    # --- persistence ----------------------------------------------------------------------------

    def __contains__(self, key: StreamKey) -> bool:
        return key in self._streams

    def state(self, key: StreamKey) -> StreamState | None:
        """Positions, samples and names of a stream (without its buffered events: ``buffered``)."""
        s = self._streams.get(key)
        return None if s is None else s.state()

    def buffered(self, key: StreamKey) -> Cols:
        """The stream's buffered events: positions ``[base, seen)``."""
        s = self._streams.get(key)
        return Cols.empty() if s is None else s.buffered()

    def restore(self, head: StreamChunk, state: StreamState, events: Cols | None) -> None:
        """Install a stream (identity from ``head``) with ``state`` and its buffered events."""
        s = _Stream(self.policy, head)
        s.load(state, events)
        self._streams[head.key] = s

    def hand_over(self, key: StreamKey, other: WindowBuilder) -> None:
        """Move a stream to another builder (its node or partition changed)."""
        s = self._streams.pop(key, None)
        if s is not None:
            other._streams[key] = s
