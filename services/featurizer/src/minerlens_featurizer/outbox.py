"""What the featurizer engine hands to its transport after a micro-batch: windows, dead letters,
control messages, and the state writes that may only be persisted once the windows are delivered."""

from __future__ import annotations

from dataclasses import dataclass, field

from minerlens_core.features import Window
from minerlens_core.schemas import ContainerImage, PodRef


@dataclass(frozen=True, slots=True)
class WindowMeta:
    """Envelope data of a window, fixed when the window closes."""

    cluster: str
    node: str
    pod: PodRef
    container_id: str
    lost_events: int
    first_seq: int | None
    observed_ns: int
    """the window's end (event time), else the closing batch's observed_at: replays give the same bytes"""
    container_image: ContainerImage | None = None
    """the container's image, as the stream's latest batch or sample said (None: the collector did not know)"""


@dataclass(frozen=True, slots=True)
class PendingWindow:
    window: Window
    meta: WindowMeta


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    error: BaseException | None
    key: bytes | None
    value: bytes
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class ControlOut:
    """A control message for one partition, or for every partition (``partition`` None) except ``skip``."""

    value: bytes
    partition: int | None = None
    skip: int | None = None


@dataclass
class Writes:
    """State changes of one partition: keys to set and keys to delete (tombstones), in order."""

    sets: dict[bytes, bytes] = field(default_factory=dict)
    deletes: set[bytes] = field(default_factory=set)

    def set(self, key: bytes, value: bytes) -> None:
        self.deletes.discard(key)
        self.sets[key] = value

    def delete(self, key: bytes) -> None:
        self.sets.pop(key, None)
        self.deletes.add(key)


@dataclass
class Outbox:
    windows: list[PendingWindow] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    control: list[ControlOut] = field(default_factory=list)
    writes: dict[int, Writes] = field(default_factory=dict)

    def writes_for(self, partition: int) -> Writes:
        w = self.writes.get(partition)
        if w is None:
            w = self.writes[partition] = Writes()
        return w

    def __bool__(self) -> bool:
        return bool(self.windows or self.dead_letters or self.control or self.writes)
