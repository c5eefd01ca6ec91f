"""Per-stream state that survives restarts, in the Faust table (compacted changelog topic).

One stream (pod uid, container id) is stored as

* a **header** (``s|<pod>|<container>``, small JSON): identity, last collector ``seq`` and times for
  duplicate/gap detection, events lost but not yet reported in a window, the window builder's
  positions, and the list of live segments;
* **segments** (``g|<pod>|<container>|<n>``, numpy bytes): the events the window builder still
  buffers (the open window), written once when they arrive and deleted when every window that needs
  them has been emitted. The changelog therefore carries each buffered event about once, 14 bytes
  per event (int16 id, int32 tid, int64 timestamp).

Pod-level losses reported before the pod has a stream wait under ``p|<pod>``, and ``o|in|<p>`` /
``o|ctl|<p>`` hold the last input / control offset of partition ``p`` that the stored state includes,
so messages Kafka redelivers after a crash (from the last committed offset) are not applied twice.

The window builder (``minerlens_core.features.WindowBuilder``) exposes no snapshot API, so
``export_core``/``install_core`` read and write its per-stream state directly. ``check_core_layout``
fails loudly at start-up if the core's stream state ever changes shape (and the restart tests fail
too); a ``WindowBuilder.snapshot/restore`` in core would remove this coupling.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from minerlens_core.features import StreamChunk, StreamKey, WindowBuilder, WindowPolicy
from minerlens_core.features.windows import _Stream
from minerlens_core.schemas import PodRef
from pydantic import BaseModel, ConfigDict

I16 = npt.NDArray[np.int16]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Arrays = tuple[I16, I32, I64]

HEADER_PREFIX = b"s|"
SEGMENT_PREFIX = b"g|"
POD_LOSS_PREFIX = b"p|"
OFFSET_PREFIX = b"o|"
STATE_VERSION = 1

CORE_FIELDS = ("base", "seen", "next_start", "covered", "slot", "floor", "first_slot")
"""The window builder's per-stream positions (besides its buffered events) that a restart must restore."""
_CORE_ATTRIBUTES = {"p", "head", "parts", *CORE_FIELDS}

_SEGMENT = struct.Struct("<Bqqi")  # version, start position, collector seq, events


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


def encode_segment(seg: Segment, arrays: Arrays) -> bytes:
    ids, tids, ts = arrays
    return b"".join(
        (
            _SEGMENT.pack(STATE_VERSION, seg.start, seg.seq, seg.n),
            np.ascontiguousarray(ids, dtype="<i2").tobytes(),
            np.ascontiguousarray(tids, dtype="<i4").tobytes(),
            np.ascontiguousarray(ts, dtype="<i8").tobytes(),
        )
    )


def decode_segment(raw: bytes) -> tuple[int, int, Arrays]:
    """(start, seq, (ids, tids, ts)) of a stored segment; raises ``ValueError`` when malformed."""
    version, start, _seq, n = _SEGMENT.unpack_from(raw)
    if version != STATE_VERSION or len(raw) != _SEGMENT.size + 14 * n:
        msg = f"segment: version {version}, {len(raw)} bytes for {n} events"
        raise ValueError(msg)
    o = _SEGMENT.size
    ids = np.frombuffer(raw, dtype="<i2", count=n, offset=o).astype(np.int16)
    tids = np.frombuffer(raw, dtype="<i4", count=n, offset=o + 2 * n).astype(np.int32)
    ts = np.frombuffer(raw, dtype="<i8", count=n, offset=o + 6 * n).astype(np.int64)
    return start, _seq, (ids, tids, ts)


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
    unsaved: dict[int, Arrays] = field(default_factory=dict)
    """segments created since the last checkpoint (not yet in the changelog)"""
    dead: list[int] = field(default_factory=list)
    """saved segments no longer needed (tombstones at the next checkpoint)"""

    @property
    def key(self) -> StreamKey:
        return self.header.key

    def marks(self) -> list[tuple[int, int]]:
        """(start position, collector seq) of the live segments, oldest first."""
        return [(s.start, s.seq) for s in self.segments]

    def add_segment(self, seg: Segment, arrays: Arrays) -> None:
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


# --- the window builder's internals ----------------------------------------------------------------


def check_core_layout(policy: WindowPolicy) -> None:
    """Raise if ``WindowBuilder``'s per-stream state is not what ``export_core``/``install_core`` expect."""
    probe = _Stream(policy, StreamChunk("probe", "", np.zeros(0, np.int16), np.zeros(0, np.int32)))
    found = set(vars(probe))
    if found != _CORE_ATTRIBUTES:
        msg = f"minerlens_core WindowBuilder stream state changed ({sorted(found ^ _CORE_ATTRIBUTES)}): update state.py"
        raise RuntimeError(msg)


def core_of(builder: WindowBuilder, key: StreamKey) -> _Stream | None:
    return builder._streams.get(key)


def export_core(stream: _Stream) -> dict[str, int]:
    return {f: int(getattr(stream, f)) for f in CORE_FIELDS}


def install_core(builder: WindowBuilder, head: StreamChunk, core: dict[str, int], tail: Arrays | None) -> None:
    """Put a stream with the given positions and buffered events ``[base, seen)`` into ``builder``."""
    s = _Stream(builder.policy, head)
    for f in CORE_FIELDS:
        setattr(s, f, bool(core[f]) if f == "first_slot" else int(core[f]))
    if tail is not None and len(tail[0]):
        if len(tail[0]) != s.seen - s.base:
            msg = f"stream {head.key}: {len(tail[0])} buffered events for positions [{s.base}, {s.seen})"
            raise ValueError(msg)
        s.parts = [tail]
    elif s.seen != s.base:
        msg = f"stream {head.key}: no buffered events for positions [{s.base}, {s.seen})"
        raise ValueError(msg)
    builder._streams[head.key] = s


def move_core(src: WindowBuilder, dst: WindowBuilder, key: StreamKey) -> None:
    """Hand a stream to another builder (its node or partition changed)."""
    stream = src._streams.pop(key, None)
    if stream is not None:
        dst._streams[key] = stream


def resume_positions(core: dict[str, int], policy: WindowPolicy, trailing_emitted: bool) -> dict[str, int]:
    """Positions for a stream that was flushed (idle) and may come back: no window id is ever reused.

    Count windows continue at the next stride boundary past everything emitted (no buffered events);
    time windows never reopen the slot that was flushed.
    """
    c = dict(core)
    if policy.kind == "time":
        c["floor"] = max(c["floor"], c["slot"] + 1)
        c["base"] = c["seen"]
        c["first_slot"] = 0
        return c
    stride = policy.stride or 1
    nxt = c["next_start"] + (stride if trailing_emitted else 0)
    resume = -(-max(c["seen"], nxt) // stride) * stride
    c.update(base=resume, seen=resume, next_start=resume, covered=resume)
    return c
