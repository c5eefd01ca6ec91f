"""Messages downstream of the featurizer: feature windows and per-window verdicts.

A window is identified by ``window_id`` = ``<pod uid>/<container id>/<policy tag>/<index>``: the same
syscalls always give the same id, so replays (featurizer restarts, Kafka redelivery) are recognised
downstream and never raise a second alert.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, TypeAdapter, model_validator

from minerlens_core.schemas.envelope import Envelope

MAX_SEQUENCE = 512
"""Longest syscall-id sequence a window message carries (the LSTM reads the tail it needs)."""


def window_id(pod_uid: str, container_id: str, policy_tag: str, index: int) -> str:
    """Deterministic id of a window (see module docstring)."""
    return f"{pod_uid}/{container_id or '-'}/{policy_tag}/{index}"


class FeatureWindow(BaseModel):
    """One window of one (pod, container) stream, vectorised with the shared feature library.

    ``features`` follows ``FeatureSpec.names`` of the spec whose digest is ``feature_digest``; NaN
    (unknown, e.g. rates without timestamps) travels as ``null``. ``sequence`` holds vocabulary ids of
    the window's syscalls (``features.window_sequence``) for sequence models.
    ``lost_events`` counts events the collector reported lost for this stream (or its node) while the
    window was open: a window with loss is still scored, and says so.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["feature_window"] = "feature_window"
    envelope: Envelope
    window_id: str = Field(min_length=1, max_length=512)
    policy: str = Field(min_length=1, max_length=64, description="WindowPolicy tag, e.g. time:1s or count:1000/1000")
    index: int = Field(ge=0)
    start_ns: int | None = Field(default=None, ge=0)
    end_ns: int | None = Field(default=None, ge=0)
    first_seq: int | None = Field(default=None, ge=0, description="collector batch seq of the first syscall")
    count: int = Field(ge=1, description="syscalls in the window")
    complete: bool = True
    lost_events: NonNegativeInt = 0
    feature_version: str
    feature_digest: str = Field(min_length=64, max_length=64)
    features: list[float | None]
    sequence: list[NonNegativeInt] = Field(default_factory=list, max_length=MAX_SEQUENCE)

    @model_validator(mode="after")
    def _sane(self) -> Self:
        if self.start_ns is not None and self.end_ns is not None and self.end_ns < self.start_ns:
            msg = "end_ns before start_ns"
            raise ValueError(msg)
        if any(v is not None and math.isinf(v) for v in self.features):
            msg = "features must be finite numbers or null"
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
    threshold: float
    miner: bool


Decision = Literal["miner", "benign", "insufficient_data"]


class Reason(BaseModel):
    """A feature that pushed the score, as the scorer saw it (cheap, inline; the explainer goes deeper)."""

    model_config = ConfigDict(extra="forbid")

    feature: str
    value: float | None
    baseline: float | None = None
    contribution: float
    text: str = ""


class Verdict(BaseModel):
    """The scorer's decision on one window. ``insufficient_data`` windows are reported, not skipped."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["verdict"] = "verdict"
    envelope: Envelope
    window_id: str
    policy: str
    index: int = Field(ge=0)
    start_ns: int | None = None
    end_ns: int | None = None
    count: int = Field(ge=0)
    lost_events: NonNegativeInt = 0
    decision: Decision
    score: float | None = Field(default=None, ge=0.0, le=1.0, description="score of the deciding model")
    threshold: float | None = None
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
