"""``SyscallAggregate`` (kind ``syscall_aggregate``, aggregate version 1): one (pod, container) stream's syscalls
over one window, aggregated where they were captured (the collector's eBPF source) instead of sent one by one.

Beside ``SyscallBatch`` on the syscall topic, keyed by pod uid like it. What it holds, per window
``[start_ns, end_ns)`` (Unix-epoch ns):

* ``counts``: calls per (process ``pid``, thread ``tid``, syscall ``nr``);
* ``ngram2``: consecutive pairs ``(a, b)`` **of one thread**, summed per process; ``nc = 1`` for pairs of the
  no-cheap sequence (the thread's calls with the numbers in ``cheap`` left out), ``nc = 0`` for all calls;
* ``ngram3``: consecutive no-cheap triples of one thread, summed per process;
* ``samples``: a bounded sample of the sequence (the first calls of the window, up to the collector's budget),
  in order per thread: ``tid``, ``nr`` and the offset ``dt_ns`` from ``start_ns``;
* ``lost_records``: records of this stream the source refused in the window (a full map or sample ring; one
  call can cost up to four: its count, pair, triple and sample), never hidden; the reasons are node-wide, in
  the collector's ``events_lost_total{reason}``.

N-grams never cross a window, a thread or a cgroup border. Syscall numbers at or above 1023 (and negative
ones) are reported as 1023 ("other"). Every column is bounded; a message that breaks a bound is refused.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from minerlens_core.schemas.bounds import INT64_MAX, NonNegInt32, NonNegInt64
from minerlens_core.schemas.envelope import Envelope
from minerlens_core.schemas.events import TaskInfo
from minerlens_core.syscalls import Arch

AGGREGATE_VERSION = 1
MAX_ROWS = 1 << 20
"""Most rows one column group may hold."""
NR_OTHER = 1023
Nr = Annotated[int, Field(ge=0, le=NR_OTHER)]
Calls = Annotated[int, Field(ge=1, le=INT64_MAX)]


class _Columns(BaseModel):
    """Parallel columns: every field is a list, all of one length."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _agree(self) -> Self:
        lengths = {n: len(getattr(self, n)) for n in type(self).model_fields}
        if len(set(lengths.values())) > 1:
            msg = f"column length mismatch: {lengths}"
            raise ValueError(msg)
        return self


def _col() -> Any:
    return Field(default_factory=list, max_length=MAX_ROWS)


class CountColumns(_Columns):
    pid: list[NonNegInt32] = _col()
    tid: list[NonNegInt32] = _col()
    nr: list[Nr] = _col()
    n: list[Calls] = _col()


class PairColumns(_Columns):
    pid: list[NonNegInt32] = _col()
    a: list[Nr] = _col()
    b: list[Nr] = _col()
    nc: list[Literal[0, 1]] = _col()
    n: list[Calls] = _col()


class TripleColumns(_Columns):
    pid: list[NonNegInt32] = _col()
    a: list[Nr] = _col()
    b: list[Nr] = _col()
    c: list[Nr] = _col()
    n: list[Calls] = _col()


class SampleColumns(_Columns):
    tid: list[NonNegInt32] = _col()
    nr: list[Nr] = _col()
    dt_ns: list[NonNegInt64] = _col()


class SyscallAggregate(BaseModel):
    """One stream's syscalls over one window, aggregated at the source (see the module doc)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["syscall_aggregate"] = "syscall_aggregate"
    aggregate_version: Literal[1] = 1
    envelope: Envelope
    source: Literal["ebpf", "reference"]
    arch: Arch
    seq: NonNegInt64 = Field(description="contiguous per (node, pod, container): a gap means a lost window")
    start_ns: NonNegInt64
    end_ns: NonNegInt64
    cheap: list[Nr] = Field(default_factory=list, max_length=NR_OTHER + 1, description="left out of nc n-grams")
    counts: CountColumns = Field(default_factory=CountColumns)
    ngram2: PairColumns = Field(default_factory=PairColumns)
    ngram3: TripleColumns = Field(default_factory=TripleColumns)
    samples: SampleColumns = Field(default_factory=SampleColumns)
    tasks: list[TaskInfo] = Field(default_factory=list, max_length=MAX_ROWS)
    lost_records: NonNegInt64 = 0

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.end_ns < self.start_ns:
            msg = "end_ns before start_ns"
            raise ValueError(msg)
        if self.samples.dt_ns and self.start_ns + max(self.samples.dt_ns) > INT64_MAX:
            msg = "start_ns + dt_ns beyond int64"
            raise ValueError(msg)
        return self

    @property
    def calls(self) -> int:
        return sum(self.counts.n)
