"""The wire contract: round trips, and invalid messages refused with a reason."""

from __future__ import annotations

import json

import pytest
from minerlens_core.schemas import DropReport, Envelope, PodRef, SyscallBatch, decode_syscall_stream
from pydantic import ValidationError


def _batch(**kw: object) -> SyscallBatch:
    base: dict[str, object] = {
        "envelope": Envelope(node="n1", pod=PodRef(uid="0f0e-1", namespace="shop", name="web-1"), container_id="c1"),
        "source": "tracefs",
        "arch": "x86_64",
        "seq": 3,
        "start_ns": 1_700_000_000_000_000_000,
        "end_ns": 1_700_000_000_000_000_500,
        "nr": [0, 1, 110],
        "tid": [10, 10, 11],
        "dt_ns": [0, 100, 500],
    }
    base.update(kw)
    return SyscallBatch.model_validate(base)


def test_batch_round_trip_and_key() -> None:
    b = _batch()
    again = decode_syscall_stream(b.model_dump_json())
    assert isinstance(again, SyscallBatch)
    assert again == b
    assert b.envelope.key == b"0f0e-1"
    assert json.loads(b.model_dump_json())["envelope"]["schema_version"] == 1


def test_drop_report_is_decoded_by_kind_and_node_key() -> None:
    r = DropReport(envelope=Envelope(node="n1"), source="tracefs", reason="ring_buffer_overrun", lost_events=7, cpu=1)
    again = decode_syscall_stream(r.model_dump_json())
    assert isinstance(again, DropReport)
    assert again.lost_events == 7
    assert r.envelope.key == b"node:n1"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"tid": [10, 10]}, "column length mismatch"),
        ({"dt_ns": [0, 1]}, "column length mismatch"),
        ({"nr": [0, -1, 2]}, "greater than or equal to 0"),
        ({"nr": [], "tid": [], "dt_ns": []}, "at least one syscall"),
        ({"start_ns": None}, "dt_ns needs start_ns"),
        ({"end_ns": 5}, "end_ns before start_ns"),
        ({"arch": "sparc"}, "arch"),
        ({"source": "magic"}, "source"),
    ],
)
def test_invalid_batches_are_refused_with_reason(change: dict[str, object], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        _batch(**change)


def test_other_schema_version_and_garbage_are_refused() -> None:
    doc = json.loads(_batch().model_dump_json())
    doc["envelope"]["schema_version"] = 2
    with pytest.raises(ValidationError, match="schema_version"):
        decode_syscall_stream(json.dumps(doc))
    with pytest.raises(ValidationError):
        decode_syscall_stream(b"\x00\x01not json")
    with pytest.raises(ValidationError, match="kind"):
        decode_syscall_stream('{"kind": "other"}')


def test_envelope_requires_timezone_aware_time() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        Envelope(node="n1", observed_at="2026-01-01T00:00:00")  # type: ignore[arg-type]
