"""The ``featurizer`` boundary: messages of the syscall topic through the featurizer's engine, as the service runs it.

An input is a flags byte followed by at most ``MAX_MESSAGES`` message values separated by newlines (a
producer's JSON never holds a raw newline, so byte mutations split, join and cut messages). The engine is
driven as ``FeaturizerApp`` drives it, without Faust: ``on_input`` per message with its partition and
offset, ``take`` at each checkpoint, windows encoded with ``WindowEncoder``, node-wide losses fanned out to
the other partition through ``on_control``, state writes applied to a dict standing for the changelog
table. The flags choose what happens around the messages:

* ``RESTART``: after half the messages, checkpoint and start a new engine on the persisted state;
* ``EVERY``: checkpoint after every message (else only at the restart point and at the end);
* ``TWO_PARTITIONS``: messages are spread over two partitions by their key, as the collector keys them
  (``Envelope.key``: the pod uid, or the node for node-level messages; undecodable ones: partition 0);
* ``TICK``: a watermark tick (the engine's own marks) after half the messages;
* ``FLUSH``: a final tick past every idle timeout (trailing windows of every stream);
* ``REDELIVER``: the first message is delivered again with its offset after the restart point;
* the two high bits: the served feature spec (``specs()``: the shipped model's 2-s time windows for 0
  and 1, count windows of 64 every 16 for 2, per-process 1-s time windows for 3).

Documented outcomes: a message is processed, or refused as one dead letter with a reason of
``minerlens_featurizer.validation`` (``DEAD_LETTER_REASONS``). A ``FuzzFailure`` is raised for anything
else: an ``internal_error`` dead letter or an error the engine logged and survived (a caught bug), a
window that does not encode or whose message does not decode, a window id emitted twice with other
bytes, a redelivered message that changed anything, and state that does not come back the same after a
restart (streams, headers, builder positions, buffered events, offsets, nothing discarded).
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from minerlens_core.features import FeatureSpec, WindowPolicy
from minerlens_core.models import VerifiedManifest
from minerlens_core.schemas.events import decode_syscall_stream
from minerlens_core.schemas.windows import decode_window
from minerlens_featurizer.control import encode_control
from minerlens_featurizer.encode import WindowEncoder
from minerlens_featurizer.engine import CONTROL, INPUT, Featurizer
from minerlens_featurizer.settings import FeaturizerSettings
from minerlens_featurizer.spec import ServedSpec, policy_tag
from minerlens_featurizer.state import header_key, load_header
from pydantic import ValidationError

from tests.fuzz.outcomes import OUTCOMES, FuzzFailure, logged_errors

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "default"
MAX_MESSAGES = 12
PARTITIONS = (0, 1)
RESTART, EVERY, TWO_PARTITIONS, TICK, FLUSH, REDELIVER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
NOW = 1_767_225_700.0
"""The engine's wall clock (fixed: a run is deterministic): 100 s after the seeds' batches."""
FAR_FUTURE = 4e9
DEAD_LETTER_REASONS = frozenset(
    {"undecodable", "schema_version", "unknown_arch", "unknown_kind", "invalid", "impossible", "too_large",
     "no_timestamps"}
)  # fmt: skip
"""The reasons ``minerlens_featurizer.validation`` documents (``internal_error`` is a caught bug)."""
_DEPTH = {
    "undecodable": "refused: not JSON",
    "schema_version": "refused: field checks",
    "unknown_kind": "refused: field checks",
    "unknown_arch": "refused: field checks",
    "invalid": "refused: field checks",
    "impossible": "refused: impossible values",
    "too_large": "refused: impossible values",
    "no_timestamps": "refused: impossible values",
}


@cache
def specs() -> tuple[ServedSpec, ...]:
    """The specs a featurizer serves: the shipped model's (twice: most inputs), count windows, process windows."""
    shipped = VerifiedManifest(MODEL).spec if (MODEL / "manifest.json").is_file() else None
    built = [
        shipped or FeatureSpec.build(window=WindowPolicy.time(2.0)),
        FeatureSpec.build(window=WindowPolicy.count(64, stride=16)),
        FeatureSpec.build(window=WindowPolicy(kind="time", seconds=1.0, per_process=True)),
    ]
    served = [ServedSpec(s, policy_tag(s.window)) for s in built]
    return served[0], *served


@cache
def _settings() -> FeaturizerSettings:
    """Production defaults, except small state segments (a batch spans several) and no web server."""
    return FeaturizerSettings(web_enabled=False, segment_max_events=16, data_dir=Path("/nonexistent"))


@dataclass
class Run:
    served: ServedSpec
    clock: Callable[[], float]
    store: dict[bytes, bytes] = field(default_factory=dict)
    windows: dict[str, bytes] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)
    offsets: dict[int, int] = field(default_factory=lambda: dict.fromkeys(PARTITIONS, 0))
    control_offsets: dict[int, int] = field(default_factory=lambda: dict.fromkeys(PARTITIONS, 0))
    control: list[tuple[int, bytes]] = field(default_factory=list)
    engine: Featurizer = field(init=False)

    def __post_init__(self) -> None:
        self.encoder = WindowEncoder(self.served)
        self.start()

    def start(self) -> None:
        self.engine = Featurizer(self.served, _settings(), self.store, clock=self.clock)

    def feed(self, value: bytes, partition: int, offset: int | None = None) -> None:
        if offset is None:
            offset = self.offsets[partition]
            self.offsets[partition] += 1
        self.engine.on_input(value, b"fuzz", partition, offset, "minerlens.syscalls")

    def tick(self, wall: float) -> None:
        tick = encode_control(self.engine.tick(wall))
        self.control += [(p, tick) for p in PARTITIONS]
        self.deliver_control()

    def deliver_control(self) -> None:
        pending, self.control = self.control, []
        for p, value in pending:
            self.engine.on_control(value, p, self.control_offsets[p])
            self.control_offsets[p] += 1

    def checkpoint(self) -> None:
        """What ``FeaturizerApp.flush`` does: encode and deliver the windows, then persist the state writes."""
        box = self.engine.take()
        for record in self.encoder.encode(box.windows):
            try:
                window = decode_window(record.value)
            except ValidationError as exc:
                raise FuzzFailure(f"the featurizer emitted a window consumers refuse: {exc}") from None
            before = self.windows.setdefault(window.window_id, record.value)
            if before != record.value:
                raise FuzzFailure(f"window {window.window_id} emitted twice with other bytes")
        for letter in box.dead_letters:
            if letter.reason not in DEAD_LETTER_REASONS:
                raise FuzzFailure(f"dead letter {letter.reason!r}: {type(letter.error).__name__}: {letter.error}")
            self.reasons[letter.reason] += 1
        for c in box.control:  # the service fans node losses out over the control topic
            targets = [q for q in PARTITIONS if q != c.skip] if c.partition is None else [c.partition]
            self.control += [(q, c.value) for q in targets]
        for writes in box.writes.values():
            self.store.update(writes.sets)
            for k in writes.deletes:
                self.store.pop(k, None)

    def restart(self) -> None:
        """A new engine on the persisted state: it must restore exactly what the old one held."""
        old = self.engine
        self.start()
        new = self.engine
        for p in PARTITIONS:
            new.load_partition(p)
            for kind in (INPUT, CONTROL):
                was, now = old.next_offset(kind, p), new.next_offset(kind, p)
                if was != now:
                    raise FuzzFailure(f"partition {p}: next {kind!r} offset {was} restored as {now}")
        discarded = new.metrics.registry.get_sample_value("minerlens_featurizer_discarded_states_total")
        if discarded:
            raise FuzzFailure(f"{discarded:.0f} stream states the engine wrote were discarded on restart")
        if set(new.streams) != set(old.streams):
            raise FuzzFailure(f"streams {sorted(old.streams)} restored as {sorted(new.streams)}")
        for key, st in old.streams.items():
            again = new.streams[key]
            stored = self.store.get(header_key(key))
            if stored is None or load_header(stored) != st.header or again.header != st.header:
                raise FuzzFailure(f"stream {key}: header {st.header!r} restored as {again.header!r}")
            _same_builder(key, old, new)


def _same_builder(key: tuple[str, str], old: Featurizer, new: Featurizer) -> None:
    h = old.streams[key].header
    was = old.registry.builders[(h.partition, h.node)]  # the harness reads the engine's builders
    now = new.registry.builders[(h.partition, h.node)]
    a, b = was.state(key), now.state(key)
    if a is None or b is None or a.positions != b.positions:
        raise FuzzFailure(f"stream {key}: builder positions {a and a.positions} restored as {b and b.positions}")
    x, y = was.buffered(key), now.buffered(key)
    for name in ("ids", "tids", "ts", "pids", "fdk"):
        if not np.array_equal(getattr(x, name), getattr(y, name)):
            raise FuzzFailure(f"stream {key}: buffered {name} differ after the restart")


def _partition(value: bytes) -> int:
    """The partition the collector's producer puts a message in: by its key (``Envelope.key``)."""
    try:
        key = decode_syscall_stream(value).envelope.key
    except (ValidationError, ValueError):
        return 0
    return zlib.crc32(key) % len(PARTITIONS)


def split(data: bytes) -> tuple[int, list[bytes]]:
    """(flags, message values) of an input."""
    if not data:
        return 0, []
    return data[0], data[1:].split(b"\n", MAX_MESSAGES)[:MAX_MESSAGES]


def join(flags: int, messages: list[bytes]) -> bytes:
    return bytes([flags]) + b"\n".join(messages)


def featurizer_target(data: bytes) -> None:
    run = drive(data)
    refused = sum(run.reasons.values())
    if refused < len(split(data)[1]):
        OUTCOMES["processed, windows out" if run.windows else "processed, no window"] += 1
    else:
        depth = ["refused: not JSON", "refused: field checks", "refused: impossible values"]
        OUTCOMES[max((_DEPTH[r] for r in run.reasons), key=depth.index, default="refused: not JSON")] += 1


def drive(data: bytes) -> Run:
    """The input through the engine (module docstring); ``FuzzFailure`` on an undocumented outcome."""
    flags, messages = split(data)
    run = Run(specs()[flags >> 6], clock=lambda: NOW)
    half, first = len(messages) // 2, 0
    with logged_errors("minerlens_featurizer") as errors:
        for i, value in enumerate(messages):
            if i == half:
                if flags & TICK:
                    run.tick(NOW)
                if flags & RESTART:
                    run.checkpoint()
                    run.deliver_control()
                    run.checkpoint()
                    run.restart()
                if flags & REDELIVER and i > 0:
                    run.checkpoint()
                    windows, reasons = dict(run.windows), Counter(run.reasons)
                    run.feed(messages[0], first, offset=0)
                    run.checkpoint()
                    if (run.windows, run.reasons) != (windows, reasons):
                        raise FuzzFailure("a redelivered message (offset already applied) changed the output")
            partition = _partition(value) if flags & TWO_PARTITIONS else 0
            first = partition if i == 0 else first
            run.feed(value, partition)
            if flags & EVERY:
                run.checkpoint()
                run.deliver_control()
        run.checkpoint()
        run.deliver_control()
        if flags & FLUSH:
            run.tick(FAR_FUTURE)
        run.checkpoint()
        if errors:
            raise FuzzFailure("the engine logged an error it survived: " + errors[0])
    return run


def seeds() -> list[bytes]:
    from tests.fuzz.seeds import featurizer_seeds

    return [join(flags, [m.encode() for m in messages]) for flags, messages in featurizer_seeds()]
