"""Per-stream state that survives restarts, in the Faust table (compacted changelog topic).

One stream (pod uid, container id) is stored as

* a **header** (``s|<pod>|<container>``, small JSON): identity, last collector ``seq`` and times for
  duplicate/gap detection, events lost but not yet reported in a window, the window builder's
  positions, and the list of live segments;
* **segments** (``g|<pod>|<container>|<n>``, numpy bytes): the events the window builder still
  buffers (the open window), written once when they arrive and deleted when every window that needs
  them has been emitted. The changelog therefore carries each buffered event about once, 19 bytes
  per event (int16 id, int32 tid, int64 timestamp, int32 pid, int8 fd kind).

Pod-level losses reported before the pod has a stream wait under ``p|<pod>``, and ``o|in|<p>`` /
``o|ctl|<p>`` hold the last input / control offset of partition ``p`` that the stored state includes,
so messages Kafka redelivers after a crash (from the last committed offset) are not applied twice.

The window builder's per-stream state goes through its public API: ``WindowBuilder.state`` (positions,
the resource samples later windows still need, process names: kept in the header) and ``buffered``
(the events: segments), reinstalled with ``WindowBuilder.restore``.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from minerlens_core.features.windows import Cols, StreamKey, StreamState
from minerlens_core.schemas import ContainerImage, PodRef, ResourceSnapshot
from pydantic import BaseModel, ConfigDict

from minerlens_featurizer.outbox import Writes

HEADER_PREFIX = b"s|"
SEGMENT_PREFIX = b"g|"
POD_LOSS_PREFIX = b"p|"
OFFSET_PREFIX = b"o|"
STATE_VERSION = 2
PERSISTED_SAMPLES = 16
"""Resource samples a header keeps (time windows need the few of the open slot plus one before it)."""
PERSISTED_NAMES = 256


class StateReader(Protocol):
    """Read access to the state table (the Faust table, or a dict in tests)."""

    def get(self, key: bytes) -> bytes | None: ...

    def items(self) -> Iterable[tuple[bytes, bytes]]: ...


_SEGMENT = struct.Struct("<Bqqi")  # version, start position, collector seq, events
_EVENT_BYTES = 2 + 4 + 8 + 4 + 1


def _sep(key: StreamKey) -> bytes:
    return key[0].encode() + b"|" + key[1].encode()


def header_key(key: StreamKey) -> bytes:
    return HEADER_PREFIX + _sep(key)


def segment_key(key: StreamKey, no: int) -> bytes:
    return SEGMENT_PREFIX + _sep(key) + b"|" + str(no).encode()


def offset_key(kind: bytes, partition: int) -> bytes:
    """Last input (``in``) or control (``ctl``) offset of a partition whose effects the stored state holds."""
    return OFFSET_PREFIX + kind + b"|" + str(partition).encode()


def pod_loss_key(pod_uid: str) -> bytes:
    return POD_LOSS_PREFIX + pod_uid.encode()


@dataclass(frozen=True, slots=True)
class Segment:
    """Events ``[start, start + n)`` of a stream (positions), all from collector batch ``seq``."""

    no: int
    start: int
    n: int
    seq: int

    @property
    def end(self) -> int:
        return self.start + self.n


_COLUMNS = (
    ("ids", "<i2", np.int16),
    ("tids", "<i4", np.int32),
    ("ts", "<i8", np.int64),
    ("pids", "<i4", np.int32),
    ("fdk", "<i1", np.int8),
)


def encode_segment(seg: Segment, cols: Cols) -> bytes:
    return b"".join(
        (
            _SEGMENT.pack(STATE_VERSION, seg.start, seg.seq, seg.n),
            *(np.ascontiguousarray(getattr(cols, name), dtype=dt).tobytes() for name, dt, _ in _COLUMNS),
        )
    )


def decode_segment(raw: bytes) -> tuple[int, int, Cols]:
    """(start, seq, columns) of a stored segment; raises ``ValueError`` when malformed."""
    if len(raw) < _SEGMENT.size:
        msg = f"segment: {len(raw)} bytes"
        raise ValueError(msg)
    version, start, _seq, n = _SEGMENT.unpack_from(raw)
    if version != STATE_VERSION or n < 0 or len(raw) != _SEGMENT.size + _EVENT_BYTES * n:
        msg = f"segment: version {version}, {len(raw)} bytes for {n} events"
        raise ValueError(msg)
    o, arrays = _SEGMENT.size, []
    for _, dt, typ in _COLUMNS:
        arrays.append(np.frombuffer(raw, dtype=dt, count=n, offset=o).astype(typ))
        o += np.dtype(dt).itemsize * n
    ids, tids, ts, pids, fdk = arrays
    return start, _seq, Cols(ids, tids, ts, pids, fdk)  # type: ignore[arg-type]


class StreamHeader(BaseModel):
    """What is persisted about one stream besides its buffered events (see module docstring)."""

    model_config = ConfigDict(extra="forbid")

    v: int = STATE_VERSION
    spec: str
    """digest of the feature spec the state was built for; another spec's state is discarded"""
    partition: int
    cluster: str
    node: str
    pod: PodRef
    container_id: str
    container_image: ContainerImage | None = None
    """the container's image (``Envelope.container_image``) as the latest batch or sample said; absent in old state"""
    last_seq: int | None = None
    last_end_ns: int = -1
    """end_ns of the latest accepted batch (duplicate vs. collector-restart decision)"""
    last_event_ns: int = -1
    last_wall: float = 0.0
    observed_ns: int = 0
    """observed_at of the latest batch: the deterministic timestamp of windows without event time"""
    lost: int = 0
    """events lost since the last emitted window (drop reports, seq gaps, lost_before)"""
    seg_next: int = 0
    segs: list[tuple[int, int, int, int]] = []
    core: dict[str, int] = {}
    """the window builder's positions (``StreamState.positions``)"""
    samples: list[ResourceSnapshot] = []
    """resource samples the open window still needs"""
    names: dict[int, str] = {}
    last_sample_ns: int = -1
    """time of the latest accepted resource sample (a resent one is dropped)"""
    retired: float | None = None
    """wall time the idle stream was flushed; it keeps its window numbering until retired_ttl_s"""

    @property
    def key(self) -> StreamKey:
        return (self.pod.uid, self.container_id)


@dataclass
class LiveStream:
    """A stream in memory: its header plus what changed since the last checkpoint."""

    header: StreamHeader
    segments: list[Segment] = field(default_factory=list)
    unsaved: dict[int, Cols] = field(default_factory=dict)
    """segments created since the last checkpoint (not yet in the changelog)"""
    dead: list[int] = field(default_factory=list)
    """saved segments no longer needed (tombstones at the next checkpoint)"""

    @property
    def key(self) -> StreamKey:
        return self.header.key

    def marks(self) -> list[tuple[int, int]]:
        """(start position, collector seq) of the live segments, oldest first."""
        return [(s.start, s.seq) for s in self.segments]

    def add_segment(self, seg: Segment, arrays: Cols) -> None:
        self.segments.append(seg)
        self.unsaved[seg.no] = arrays

    def buffer(self, cols: Cols, start: int, base: int, seq: int, max_events: int) -> None:
        """A batch's events at stream positions ``[start, start + len(cols))``: those the window builder still
        buffers (from position ``base`` on) become segments of at most ``max_events``; older segments go."""
        for lo in range(max(base - start, 0), len(cols), max_events):
            hi = min(len(cols), lo + max_events)
            seg = Segment(self.header.seg_next, start + lo, hi - lo, seq)
            self.header.seg_next += 1
            self.add_segment(seg, cols.slice(lo, hi))
        self.prune(base)

    def prune(self, base: int) -> None:
        """Forget segments whose events all lie before stream position ``base``."""
        while self.segments and self.segments[0].end <= base:
            seg = self.segments.pop(0)
            if self.unsaved.pop(seg.no, None) is None:
                self.dead.append(seg.no)

    def drop_all_segments(self) -> None:
        self.prune(1 << 62)

    def to_bytes(self) -> bytes:
        self.header.segs = [(s.no, s.start, s.n, s.seq) for s in self.segments]
        return self.header.model_dump_json().encode()

    def write_to(self, w: Writes) -> None:
        """Its new segments, its header and tombstones of the segments no longer needed (a checkpoint)."""
        segs = {s.no: s for s in self.segments}
        for no, arrays in self.unsaved.items():
            w.set(segment_key(self.key, no), encode_segment(segs[no], arrays))
        self.unsaved.clear()
        w.set(header_key(self.key), self.to_bytes())
        for no in self.dead:
            w.delete(segment_key(self.key, no))
        self.dead.clear()


def read_tail(store: StateReader, st: LiveStream) -> Cols | None:
    """The events the stream's builder buffers, from its stored segments; raises when they do not fit the header."""
    if not st.segments:
        return None
    parts = []
    for seg in st.segments:
        raw = store.get(segment_key(st.key, seg.no))
        if raw is None:
            msg = f"segment {seg.no} missing"
            raise KeyError(msg)
        start, _seq, cols = decode_segment(raw)
        if start != seg.start or len(cols) != seg.n:
            msg = f"segment {seg.no} holds [{start}, +{len(cols)}), header says [{seg.start}, +{seg.n})"
            raise ValueError(msg)
        parts.append(cols)
    lo = st.header.core["base"] - st.segments[0].start
    hi = st.header.core["seen"] - st.segments[0].start
    events = Cols.concat(parts)
    if lo < 0 or hi != len(events):
        msg = f"segments cover [{st.segments[0].start}, +{len(events)}), stream buffers [{lo}, {hi})"
        raise ValueError(msg)
    return events.slice(lo, hi)


def seq_at(marks: list[tuple[int, int]], row: int) -> int | None:
    """The collector ``seq`` of the batch that brought stream position ``row`` (``marks``: ``LiveStream.marks``)."""
    if not marks:
        return None
    i = bisect.bisect_right([m[0] for m in marks], row) - 1
    return marks[max(i, 0)][1]


def load_header(raw: bytes) -> StreamHeader:
    return StreamHeader.model_validate_json(raw)


def live_segments(header: StreamHeader) -> list[Segment]:
    return [Segment(no, start, n, seq) for no, start, n, seq in header.segs]


def window_state(header: StreamHeader) -> StreamState:
    """The builder state a header describes (positions, samples, names)."""
    return StreamState(dict(header.core), list(header.samples), dict(header.names))


def keep_state(header: StreamHeader, state: StreamState) -> None:
    """Record the builder's state in the header (bounded: the latest samples and names)."""
    header.core = dict(state.positions)
    header.samples = state.samples[-PERSISTED_SAMPLES:]
    names = list(state.names.items())[-PERSISTED_NAMES:]
    header.names = dict(names)
