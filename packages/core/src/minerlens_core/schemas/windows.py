"""Messages downstream of the featurizer: feature windows and per-window verdicts.

A window is identified by ``window_id`` = ``<pod uid>/<container id>/<policy tag>/<index>``: the same
syscalls always give the same id, so replays (featurizer restarts, Kafka redelivery) are recognised
downstream and never raise a second alert.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from minerlens_core.schemas.bounds import FiniteFloat
from minerlens_core.schemas.envelope import Envelope
from minerlens_core.schemas.resources import Comm, Counter, ExePath

MAX_SEQUENCE = 512
"""Longest syscall-id sequence a window message carries (the LSTM reads the tail it needs)."""


MAX_FEATURES = 8192
"""Longest feature vector a window message may carry."""
VocabId = Annotated[int, Field(ge=0, le=(1 << 15) - 1)]
Scope = Literal["stream", "process"]


def window_id(pod_uid: str, container_id: str, policy_tag: str, index: int, pid: int | None = None) -> str:
    """Deterministic id of a window (see module docstring); per-process windows end in ``/p<pid>``."""
    base = f"{pod_uid}/{container_id or '-'}/{policy_tag}/{index}"
    return base if pid is None else f"{base}/p{pid}"


class ProcessRef(BaseModel):
    """The process a window is about (``scope: process``) or the busiest process of a stream window."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pid: int = Field(ge=1, le=(1 << 31) - 1)
    comm: Comm = ""
    exe: ExePath = ""
    cpu_cores: float | None = Field(default=None, ge=0, le=1 << 20, description="CPU it used over the window")


class FeatureWindow(BaseModel):
    """One window of one (pod, container) stream, vectorised with the shared feature library.

    ``features`` follows ``FeatureSpec.names`` of the spec whose digest is ``feature_digest``; NaN
    (unknown, e.g. rates without timestamps) travels as ``null``. ``sequence`` holds vocabulary ids of
    the window's syscalls (``features.window_sequence``) for sequence models.
    ``lost_events`` counts events the collector reported lost for this stream (or its node) while the
    window was open: a window with loss is still scored, and says so.
    ``scope`` is ``stream`` for the window of the whole (pod, container) stream and ``process`` for the
    same slot restricted to one process (``process`` names it); a stream window's ``process`` is its
    busiest process when the collector's resource samples tell. ``count`` may be 0: a slot in which the
    pod burnt CPU without a single syscall.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["feature_window"] = "feature_window"
    envelope: Envelope
    window_id: str = Field(min_length=1, max_length=512)
    policy: str = Field(min_length=1, max_length=64, description="WindowPolicy tag, e.g. time:1s or count:1000/1000")
    index: Counter
    scope: Scope = "stream"
    process: ProcessRef | None = None
    start_ns: Counter | None = None
    end_ns: Counter | None = None
    first_seq: Counter | None = Field(default=None, description="collector batch seq of the first syscall")
    count: Counter = Field(description="syscalls in the window")
    complete: bool = True
    lost_events: Counter = 0
    feature_version: str = Field(max_length=16)
    feature_digest: str = Field(min_length=64, max_length=64)
    features: list[float | None] = Field(max_length=MAX_FEATURES)
    sequence: list[VocabId] = Field(default_factory=list, max_length=MAX_SEQUENCE)

    @model_validator(mode="after")
    def _sane(self) -> Self:
        if self.start_ns is not None and self.end_ns is not None and self.end_ns < self.start_ns:
            msg = "end_ns before start_ns"
            raise ValueError(msg)
        if any(v is not None and math.isinf(v) for v in self.features):
            msg = "features must be finite numbers or null"
            raise ValueError(msg)
        if self.scope == "process" and (self.process is None or not self.window_id.endswith(f"/p{self.process.pid}")):
            msg = "a process window names its process, and its id ends in /p<pid>"
            raise ValueError(msg)
        return self

    def vector(self) -> list[float]:
        """``features`` with null turned back into NaN (what the models were trained on)."""
        return [math.nan if v is None else v for v in self.features]


class ModelRef(BaseModel):
    """Which model produced a score: name, version and the sha256 of its manifest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    manifest_sha256: str = ""


class ModelScore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: ModelRef
    score: float = Field(ge=0.0, le=1.0)
    threshold: FiniteFloat
    miner: bool


Decision = Literal["miner", "benign", "insufficient_data"]


class Reason(BaseModel):
    """A feature that pushed the score, as the scorer saw it (cheap, inline; the explainer goes deeper)."""

    model_config = ConfigDict(extra="forbid")

    feature: str = Field(max_length=256)
    value: FiniteFloat | None
    baseline: FiniteFloat | None = None
    contribution: FiniteFloat
    text: str = Field(default="", max_length=4096)


class Verdict(BaseModel):
    """The scorer's decision on one window. ``insufficient_data`` windows are reported, not skipped."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["verdict"] = "verdict"
    envelope: Envelope
    window_id: str = Field(min_length=1, max_length=512)
    policy: str = Field(min_length=1, max_length=64)
    index: Counter
    scope: Scope = "stream"
    process: ProcessRef | None = None
    start_ns: Counter | None = None
    end_ns: Counter | None = None
    count: Counter
    lost_events: Counter = 0
    decision: Decision
    score: float | None = Field(default=None, ge=0.0, le=1.0, description="score of the deciding model")
    threshold: FiniteFloat | None = None
    model: ModelRef
    scores: list[ModelScore] = Field(default_factory=list, description="every model that scored the window")
    reasons: list[Reason] = Field(default_factory=list)
    detail: str = ""


WindowStreamMessage = Annotated[FeatureWindow, Field(discriminator="kind")]
_WINDOW_ADAPTER: TypeAdapter[FeatureWindow] = TypeAdapter(FeatureWindow)
_VERDICT_ADAPTER: TypeAdapter[Verdict] = TypeAdapter(Verdict)


def decode_window(data: bytes | str) -> FeatureWindow:
    """Decode one message of the windows topic; raises ``pydantic.ValidationError`` on bad input."""
    return _WINDOW_ADAPTER.validate_json(data)


def decode_verdict(data: bytes | str) -> Verdict:
    return _VERDICT_ADAPTER.validate_json(data)
