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

The pieces: ``chunks`` (events, chunks, windows, and the order of events and samples), ``stream`` (one
stream's state machine and its persistent ``StreamState``); this module runs them over a trace or over many
live streams, and re-exports what callers import from it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pyarrow as pa

from minerlens_core.features.chunks import (
    Cols,
    StreamChunk,
    StreamKey,
    Window,
    chunk_from_batch,
    chunks_from_table,
    empty_chunk,
    merged,
)
from minerlens_core.features.spec import WindowPolicy
from minerlens_core.features.stream import MAX_NAMES, MAX_SAMPLES, Stream, StreamState
from minerlens_core.schemas.events import SyscallBatch
from minerlens_core.schemas.resources import ResourceSnapshot
from minerlens_core.traces.model import StreamSample, Trace

__all__ = [
    "MAX_NAMES",
    "MAX_SAMPLES",
    "Cols",
    "StreamChunk",
    "StreamKey",
    "StreamState",
    "Window",
    "WindowBuilder",
    "chunk_from_batch",
    "chunks_from_table",
    "merged",
    "windows_from_trace",
]


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
    chunks += [empty_chunk(k) for k in samples if k not in known]
    for chunk in chunks:
        s = Stream(policy, chunk)
        s.name(chunk.comms)
        for part in merged(chunk, samples.get(chunk.key, [])):
            yield from s.push(part) if isinstance(part, Cols) else s.add_sample(part)
        yield from s.finish()


class WindowBuilder:
    """Incremental windowing of many interleaved streams; emits each window as soon as it is complete.

    Feed ``add`` with chunks (or ``SyscallBatch`` messages) of any size and ``add_sample`` with the
    streams' resource samples; call ``flush`` when a stream (or everything) ends to get trailing windows
    and forget the state, and ``advance`` with the event-time watermark to close time slots of streams
    that went quiet. ``state``/``buffered``/``restore`` persist and reinstall a stream exactly.
    """

    def __init__(self, policy: WindowPolicy | None = None) -> None:
        self.policy = policy or WindowPolicy.count()
        self._streams: dict[StreamKey, Stream] = {}

    def _stream(self, head: StreamChunk) -> Stream:
        s = self._streams.get(head.key)
        if s is None:
            s = self._streams[head.key] = Stream(self.policy, head)
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
        return self._stream(empty_chunk(key, namespace, pod_name)).add_sample(sample)

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
        s = Stream(self.policy, head)
        s.load(state, events)
        self._streams[head.key] = s

    def hand_over(self, key: StreamKey, other: WindowBuilder) -> None:
        """Move a stream to another builder (its node or partition changed)."""
        s = self._streams.pop(key, None)
        if s is not None:
            other._streams[key] = s
