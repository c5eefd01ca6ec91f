"""Group raw syscall events into per-(pod, container) batches, bounded by size and age.

With an ``FdTable`` and a source that decodes ``args[0]``, every I/O call of a batch is tagged with the
kind of its fd (``SyscallBatch.fd_kind``); otherwise ``fd_kind`` is left out (the source cannot tell).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from minerlens_core.schemas import ContainerImage, Envelope, PodRef, SyscallBatch, TaskInfo
from minerlens_core.syscalls import Arch, syscall_number

from minerlens_collector.agent.attribution import TaskIdentity, TaskResolver
from minerlens_collector.agent.fdtable import FdTable
from minerlens_collector.events import NR_MAX, UNKNOWN_NR, RawEvents
from minerlens_collector.procfs import printable

StreamKey = tuple[str, str]
"""(pod uid, container id)"""
PodLookup = Callable[[str], PodRef | None]
ImageLookup = Callable[[str], ContainerImage | None]
"""runtime container id -> its image (None: unknown, and the envelope carries none)"""
_Part = tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int64], npt.NDArray[np.int8] | None]


@dataclass
class _Stream:
    key: StreamKey
    seq: int = 0
    parts: list[_Part] = field(default_factory=list)
    size: int = 0
    opened_at: float = 0.0
    tasks: dict[int, TaskIdentity] = field(default_factory=dict)


@dataclass
class BatchStats:
    events_in: int = 0
    events_batched: int = 0
    unattributed: int = 0
    outside_pods: int = 0
    batches: int = 0


def exec_numbers(arch: Arch) -> list[int]:
    """Numbers of ``execve`` and ``execveat`` in ``arch``."""
    return [n for name in ("execve", "execveat") if (n := syscall_number(name, arch)) is not None]


def exec_tids(events: RawEvents, exec_nrs: list[int]) -> list[int]:
    """Threads that called ``execve``/``execveat`` among ``events``."""
    mask = np.zeros(len(events), dtype=bool)
    for nr in exec_nrs:
        mask |= events.nr == nr
    return np.unique(events.tid[mask]).tolist() if mask.any() else []


class Batcher:
    """Turns ``RawEvents`` into ``SyscallBatch`` messages.

    Events of threads outside any pod are dropped (``include_node=False``) or batched under the
    pseudo pod uid ``node``; events whose thread cannot be resolved are counted as unattributed.
    """

    def __init__(
        self,
        *,
        resolver: TaskResolver,
        node: str,
        cluster: str,
        arch: Arch,
        source: str = "tracefs",
        max_events: int = 16_384,
        max_age_s: float = 1.0,
        include_node: bool = False,
        pod_lookup: PodLookup | None = None,
        image_lookup: ImageLookup | None = None,
        clock: Callable[[], float] = time.monotonic,
        fd_table: FdTable | None = None,
    ) -> None:
        self._resolver = resolver
        self._node, self._cluster, self._arch, self._source = node, cluster, arch, source
        self._max_events, self._max_age = max_events, max_age_s
        self._include_node = include_node
        self._pod_lookup = pod_lookup
        self._image_lookup = image_lookup
        self._clock = clock
        self._fd_table = fd_table
        self._exec_nrs = exec_numbers(arch)
        self._streams: dict[StreamKey, _Stream] = {}
        self.stats = BatchStats()

    def add(self, events: RawEvents) -> list[SyscallBatch]:
        """Absorb events; return the batches that became full."""
        n = len(events)
        self.stats.events_in += n
        if n == 0:
            return self.flush(force=False)
        execs = exec_tids(events, self._exec_nrs)
        if execs:  # a new program: its thread's name changed
            self._resolver.forget(execs)
        uniq, inverse = np.unique(events.tid, return_inverse=True)
        idents = [self._resolver.resolve(int(t)) for t in uniq]
        keys: list[StreamKey | None] = [self._key(i) for i in idents]
        key_ids = {k: j for j, k in enumerate(dict.fromkeys(k for k in keys if k is not None))}
        per_uniq = np.array([key_ids[k] if k is not None else -1 for k in keys], dtype=np.int64)
        stream_of = per_uniq[inverse]
        kinds = None
        if self._fd_table is not None and events.arg0 is not None:
            pids = np.array([i.pid for i in idents], dtype=np.int64)
            kinds = self._fd_table.tag(pids[inverse], events.nr, events.arg0)
        counts = np.bincount(inverse, minlength=len(uniq))
        tasks_of: dict[StreamKey, list[TaskIdentity]] = {}
        for ident, key, count in zip(idents, keys, counts.tolist(), strict=True):
            if key is not None:
                tasks_of.setdefault(key, []).append(ident)
            elif not ident.seen_live:
                self.stats.unattributed += count
            else:
                self.stats.outside_pods += count
        now = self._clock()
        for key, j in key_ids.items():
            sel = np.flatnonzero(stream_of == j)
            stream = self._streams.get(key)
            if stream is None:
                stream = self._streams[key] = _Stream(key, opened_at=now)
            elif stream.size == 0:
                stream.opened_at = now
            stream.parts.append(
                (events.ts_ns[sel], events.tid[sel], events.nr[sel], None if kinds is None else kinds[sel])
            )
            stream.size += int(sel.shape[0])
            stream.tasks.update((ident.tid, ident) for ident in tasks_of[key])
        return self.flush(force=False)

    def _key(self, ident: TaskIdentity) -> StreamKey | None:
        if ident.pod is not None:
            return (ident.pod.pod_uid, ident.pod.container_id)
        if self._include_node and ident.seen_live:
            return ("node", "")
        return None

    def flush(self, *, force: bool) -> list[SyscallBatch]:
        """Batches of streams that are full or old (all non-empty streams when ``force``)."""
        now = self._clock()
        out: list[SyscallBatch] = []
        for stream in self._streams.values():
            if stream.size == 0:
                continue
            if force or stream.size >= self._max_events or now - stream.opened_at >= self._max_age:
                out.extend(self._drain(stream))
        return out

    def _drain(self, stream: _Stream) -> list[SyscallBatch]:
        ts = np.concatenate([p[0] for p in stream.parts])
        tid = np.concatenate([p[1] for p in stream.parts])
        nr = np.concatenate([p[2] for p in stream.parts])
        tagged = [p[3] for p in stream.parts if p[3] is not None]
        kinds = np.concatenate(tagged) if len(tagged) == len(stream.parts) else None
        stream.parts.clear()
        stream.size = 0
        tasks, stream.tasks = stream.tasks, {}
        out = []
        for lo in range(0, nr.shape[0], self._max_events):
            hi = lo + self._max_events
            part_kinds = None if kinds is None else kinds[lo:hi]
            out.append(self._batch(stream, ts[lo:hi], tid[lo:hi], nr[lo:hi], part_kinds, tasks))
        return out

    def _batch(
        self,
        stream: _Stream,
        ts: npt.NDArray[np.int64],
        tid: npt.NDArray[np.int32],
        nr: npt.NDArray[np.int64],
        kinds: npt.NDArray[np.int8] | None,
        tasks: dict[int, TaskIdentity],
    ) -> SyscallBatch:
        pod_uid, container_id = stream.key
        pod = (self._pod_lookup(pod_uid) if self._pod_lookup else None) or PodRef(uid=pod_uid)
        has_time = bool(ts.shape[0]) and bool(ts[0] >= 0)
        start = int(ts.min()) if has_time else None
        seen = np.unique(tid)
        image = self._image_lookup(container_id) if self._image_lookup and container_id else None
        batch = SyscallBatch(
            envelope=Envelope(
                cluster=self._cluster, node=self._node, pod=pod, container_id=container_id, container_image=image
            ),
            source=self._source,  # type: ignore[arg-type]
            arch=self._arch,
            seq=stream.seq,
            start_ns=start,
            end_ns=int(ts.max()) if has_time else None,
            nr=np.where((nr >= 0) & (nr <= NR_MAX), nr, UNKNOWN_NR).tolist(),
            tid=tid.tolist(),
            dt_ns=(ts - start).tolist() if start is not None else None,
            fd_kind=None if kinds is None else kinds.tolist(),
            tasks=[
                TaskInfo(tid=t.tid, pid=t.pid, comm=printable(t.comm, 64))
                for t in (tasks.get(int(x)) for x in seen)
                if t is not None and t.pid >= 0
            ],
        )
        stream.seq += 1
        self.stats.batches += 1
        self.stats.events_batched += len(batch)
        return batch
