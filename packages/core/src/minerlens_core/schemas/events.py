"""Messages on the syscall stream: compact per-pod syscall batches, drop reports and resource samples."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from minerlens_core.schemas.envelope import Envelope
from minerlens_core.schemas.resources import INT64_MAX, Comm, Counter, FdKind, ResourceSample
from minerlens_core.syscalls import Arch

MAX_BATCH_EVENTS = 1 << 20
"""Most syscalls one batch may hold (collectors send at most ``batch_max_events``, 16k by default)."""
Tid = Annotated[int, Field(ge=0, le=(1 << 31) - 1)]
Nr = Annotated[int, Field(ge=0, le=(1 << 31) - 1)]
Offset = Annotated[int, Field(ge=0, le=INT64_MAX)]
FdKindCode = Annotated[int, Field(ge=0, le=max(FdKind))]


class TaskInfo(BaseModel):
    """A thread seen in a batch: kernel tid, its process (tgid) and command name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tid: Tid
    pid: Tid
    comm: Comm = ""


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
    seq: Counter
    start_ns: Counter | None = None
    end_ns: Counter | None = None
    nr: list[Nr] = Field(max_length=MAX_BATCH_EVENTS)
    tid: list[Tid] = Field(max_length=MAX_BATCH_EVENTS)
    dt_ns: list[Offset] | None = Field(default=None, max_length=MAX_BATCH_EVENTS, description="offsets from start_ns")
    fd_kind: list[FdKindCode] | None = Field(
        default=None,
        max_length=MAX_BATCH_EVENTS,
        description="FdKind of the fd argument of each I/O syscall (0: none/unknown); absent: the source cannot tell",
    )
    tasks: list[TaskInfo] = Field(default_factory=list, max_length=MAX_BATCH_EVENTS)
    lost_before: Counter = Field(default=0, description="events the source lost just before this batch")

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
            if self.dt_ns and self.start_ns + max(self.dt_ns) > INT64_MAX:
                msg = "start_ns + dt_ns beyond int64"
                raise ValueError(msg)
        if self.fd_kind is not None and len(self.fd_kind) != n:
            msg = f"column length mismatch: nr={n} fd_kind={len(self.fd_kind)}"
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
    lost_events: Counter
    lost_batches: Counter = 0
    cpu: int | None = Field(default=None, ge=0, le=1 << 20)
    interval_start_ns: Counter | None = None
    interval_end_ns: Counter | None = None
    detail: str = Field(default="", max_length=1024)


StreamMessage = SyscallBatch | DropReport | ResourceSample
SyscallStreamMessage = Annotated[StreamMessage, Field(discriminator="kind")]
_STREAM_ADAPTER: TypeAdapter[StreamMessage] = TypeAdapter(SyscallStreamMessage)


def decode_syscall_stream(data: bytes | str) -> StreamMessage:
    """Decode one message of the syscall topic; raises ``pydantic.ValidationError`` on bad input."""
    return _STREAM_ADAPTER.validate_json(data)
