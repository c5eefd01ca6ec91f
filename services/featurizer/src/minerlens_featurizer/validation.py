"""Decoding and sanity checks of syscall-topic messages: what is dead-lettered, and why.

Reasons (the ``error.reason`` header of the dead-letter message):

* ``undecodable``: not JSON, not an object, or a value-less record;
* ``schema_version``: another major version of the contract;
* ``unknown_arch``: a syscall table this library does not have;
* ``unknown_kind``: none of ``syscall_batch``, ``drop_report``, ``resource_sample``;
* ``invalid``: any other schema violation (missing fields, negative numbers, column lengths);
* ``impossible``: valid JSON and schema, but values no collector can produce (thread ids beyond
  int32, timestamps before ``min_event_ns`` or far in the future, offsets past ``end_ns``; resource
  samples timed the same way);
* ``too_large``: more syscalls in one batch than ``max_batch_events``;
* ``no_timestamps``: an order-only batch while the served windows are time windows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from minerlens_core.features import StreamChunk, chunk_from_batch
from minerlens_core.schemas import DropReport, ResourceSample, SyscallBatch, decode_syscall_stream
from pydantic import ValidationError

from minerlens_featurizer.settings import FeaturizerSettings


@dataclass(frozen=True)
class Rejection:
    """Why a message cannot be used; it goes to the dead-letter topic with this reason."""

    reason: str
    error: BaseException | None = None

    @property
    def detail(self) -> str:
        return str(self.error) if self.error is not None else self.reason


class ImpossibleValueError(ValueError):
    """A decoded batch holds values no collector produces."""


def _classify(exc: ValidationError) -> str:
    errors = exc.errors()
    locs = [tuple(str(x) for x in e["loc"]) for e in errors]
    types = {e["type"] for e in errors}
    top_level = {e["type"] for e in errors if not e["loc"]}
    if "json_invalid" in types or top_level & {"dict_type", "model_type", "model_attributes_type"}:
        return "undecodable"
    if any(loc[-2:] == ("envelope", "schema_version") for loc in locs):
        return "schema_version"
    if types & {"union_tag_invalid", "union_tag_not_found"}:
        return "unknown_kind"
    if any(loc[1:] == ("arch",) for loc in locs):
        return "unknown_arch"
    return "invalid"


def decode(raw: bytes | None) -> SyscallBatch | DropReport | ResourceSample | Rejection:
    """One message of the syscall topic, or why it is unusable. Never raises on data."""
    if raw is None or not raw:
        return Rejection("undecodable", ValueError("empty message value"))
    try:
        return decode_syscall_stream(raw)
    except ValidationError as exc:
        return Rejection(_classify(exc), exc)
    except (ValueError, UnicodeDecodeError) as exc:
        return Rejection("undecodable", exc)


@dataclass(frozen=True)
class Limits:
    """Bounds outside which a batch is impossible (see module docstring)."""

    max_batch_events: int
    min_event_ns: int
    max_future_ns: int
    needs_time: bool
    clock: Callable[[], float] = time.time

    @classmethod
    def from_settings(cls, settings: FeaturizerSettings, needs_time: bool) -> Limits:
        return cls(
            max_batch_events=settings.max_batch_events,
            min_event_ns=settings.min_event_ns,
            max_future_ns=round(settings.max_future_s * 1e9),
            needs_time=needs_time,
        )


def to_chunk(batch: SyscallBatch, limits: Limits) -> StreamChunk | Rejection:
    """The batch as a core ``StreamChunk`` (``chunk_from_batch``, the training code path), checked.

    The checks run on the converted numpy columns: thread ids beyond int32 or offsets beyond int64 fail
    the conversion itself; timestamps are bounded by ``min_event_ns``, now + ``max_future_s`` and the
    batch's own ``end_ns`` (an int64 wrap-around lands below ``min_event_ns``).
    """
    n = len(batch)
    if n > limits.max_batch_events:
        msg = f"{n} syscalls > max_batch_events {limits.max_batch_events}"
        return Rejection("too_large", ImpossibleValueError(msg))
    if limits.needs_time and (batch.dt_ns is None or batch.start_ns is None):
        return Rejection("no_timestamps", ValueError("time windows need timestamps; the batch has no dt_ns"))
    try:
        chunk = chunk_from_batch(batch)
        if batch.start_ns is not None:
            _check_time(batch, chunk, limits)
    except (ImpossibleValueError, OverflowError) as exc:
        return Rejection("impossible", exc)
    return chunk


def check_sample(msg: ResourceSample, limits: Limits) -> Rejection | None:
    """Why a resource sample is impossible (its time is bounded as a batch's), or None when it is usable."""
    t = msg.sample.ts_ns
    horizon = int(limits.clock() * 1e9) + limits.max_future_ns
    if t < limits.min_event_ns or t > horizon:
        text = f"sample time {t} is before min_event_ns {limits.min_event_ns} or more than max_future_s ahead"
        return Rejection("impossible", ImpossibleValueError(text))
    return None


def _check_time(batch: SyscallBatch, chunk: StreamChunk, limits: Limits) -> None:
    horizon = int(limits.clock() * 1e9) + limits.max_future_ns
    ts = chunk.ts_ns
    lo, hi = (int(ts.min()), int(ts.max())) if ts is not None else (batch.start_ns or 0, batch.start_ns or 0)
    if lo < limits.min_event_ns:
        msg = f"timestamp {lo} is before min_event_ns {limits.min_event_ns} (boot-relative clock?)"
        raise ImpossibleValueError(msg)
    if batch.end_ns is not None and hi > batch.end_ns:
        msg = f"an event at {hi} lies after the batch's end_ns {batch.end_ns}"
        raise ImpossibleValueError(msg)
    if max(hi, batch.end_ns or 0) > horizon:
        msg = f"timestamp {max(hi, batch.end_ns or 0)} is more than max_future_s in the future"
        raise ImpossibleValueError(msg)
