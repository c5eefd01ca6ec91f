"""Messages on the syscall stream: compact per-pod syscall batches and drop reports."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, TypeAdapter, model_validator

from minerlens_core.schemas.envelope import Envelope
from minerlens_core.syscalls import Arch


class TaskInfo(BaseModel):
    """A thread seen in a batch: kernel tid, its process (tgid) and command name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tid: int = Field(ge=0)
    pid: int = Field(ge=0)
    comm: str = Field(default="", max_length=64)


class SyscallBatch(BaseModel):
    """Syscalls of one container of one pod, in kernel order, as parallel columns.

    ``nr[i]`` was entered by thread ``tid[i]`` at ``start_ns + dt_ns[i]`` (ns since the Unix epoch).
    ``dt_ns`` is absent when the source does not know time (order-only traces).
    ``seq`` increases by one per batch of the same (node, pod, container) stream, so consumers
    detect gaps and duplicates.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["syscall_batch"] = "syscall_batch"
    envelope: Envelope
    source: Literal["tracefs", "strace", "replay"]
    arch: Arch
    seq: int = Field(ge=0)
    start_ns: int | None = Field(default=None, ge=0)
    end_ns: int | None = Field(default=None, ge=0)
    nr: list[NonNegativeInt]
    tid: list[NonNegativeInt]
    dt_ns: list[NonNegativeInt] | None = Field(default=None, description="offsets from start_ns")
    tasks: list[TaskInfo] = Field(default_factory=list)
    lost_before: int = Field(default=0, ge=0, description="events the source lost just before this batch")

    @model_validator(mode="after")
    def _columns_agree(self) -> Self:
        n = len(self.nr)
        if n == 0:
            msg = "a batch holds at least one syscall"
            raise ValueError(msg)
        if len(self.tid) != n:
            msg = f"column length mismatch: nr={n} tid={len(self.tid)}"
            raise ValueError(msg)
        if self.dt_ns is not None:
            if len(self.dt_ns) != n:
                msg = f"column length mismatch: nr={n} dt_ns={len(self.dt_ns)}"
                raise ValueError(msg)
            if self.start_ns is None:
                msg = "dt_ns needs start_ns"
                raise ValueError(msg)
        if self.start_ns is not None and self.end_ns is not None and self.end_ns < self.start_ns:
            msg = "end_ns before start_ns"
            raise ValueError(msg)
        return self

    def __len__(self) -> int:
        return len(self.nr)


class DropReport(BaseModel):
    """Events the collector lost or could not attribute, reported in-band, never hidden.

    Node-wide loss (ring-buffer overrun on a CPU) has ``envelope.pod`` unset; loss known to hit one
    pod (spool overflow) names it.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["drop_report"] = "drop_report"
    envelope: Envelope
    source: Literal["tracefs", "strace", "replay", "spool"]
    reason: Literal["ring_buffer_overrun", "spool_overflow", "unattributed", "decode_error"]
    lost_events: int = Field(ge=0)
    lost_batches: int = Field(default=0, ge=0)
    cpu: int | None = Field(default=None, ge=0)
    interval_start_ns: int | None = Field(default=None, ge=0)
    interval_end_ns: int | None = Field(default=None, ge=0)
    detail: str = Field(default="", max_length=1024)


SyscallStreamMessage = Annotated[SyscallBatch | DropReport, Field(discriminator="kind")]
_STREAM_ADAPTER: TypeAdapter[SyscallBatch | DropReport] = TypeAdapter(SyscallStreamMessage)


def decode_syscall_stream(data: bytes | str) -> SyscallBatch | DropReport:
    """Decode one message of the syscall topic; raises ``pydantic.ValidationError`` on bad input."""
    return _STREAM_ADAPTER.validate_json(data)
