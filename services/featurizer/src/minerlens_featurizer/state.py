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

import struct
from dataclasses import dataclass, field

import numpy as np
from minerlens_core.features.windows import Cols, StreamKey, StreamState
from minerlens_core.schemas import PodRef, ResourceSnapshot
from pydantic import BaseModel, ConfigDict

HEADER_PREFIX = b"s|"
SEGMENT_PREFIX = b"g|"
POD_LOSS_PREFIX = b"p|"
OFFSET_PREFIX = b"o|"
STATE_VERSION = 2
PERSISTED_SAMPLES = 16
"""Resource samples a header keeps (time windows need the few of the open slot plus one before it)."""
PERSISTED_NAMES = 256

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
