"""Resource context of a (pod, container) stream: what its cgroup and processes consumed, sampled.

The syscall mix alone cannot tell a miner that makes 20 syscalls/s from an idle pod; the CPU it burns
can. The collector samples each stream's cgroup (``cpu.stat``, memory, huge pages, pids) and the
processes in it (``/proc/<pid>/stat``, ``status``, ``fd``) every ``sample_interval_s`` and sends a
``ResourceSample`` on the syscall topic, keyed by pod uid like the stream's batches, so both arrive in
order on one partition. Counters are **cumulative** (CPU time since the cgroup / process started): a
consumer takes differences between two samples, so a lost sample costs resolution, never a wrong rate.

``FdKind`` codes also tag the fd argument of I/O syscalls in ``SyscallBatch.fd_kind``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from minerlens_core.schemas.bounds import INT64_MAX, NoControl, NonNegInt32, NonNegInt64
from minerlens_core.schemas.envelope import Envelope

__all__ = ["INT64_MAX", "MAX_PROCESSES", "FdCounts", "FdKind", "ProcessSample", "ResourceSample", "ResourceSnapshot"]
MAX_PROCESSES = 256
"""Processes one sample lists (the busiest by CPU); the rest are counted in ``processes_omitted``."""

Counter = NonNegInt64
Small = NonNegInt32
Comm = Annotated[str, Field(max_length=64), NoControl]
ExePath = Annotated[str, Field(max_length=1024), NoControl]


class FdKind(IntEnum):
    """What an fd refers to (``/proc/<pid>/fd/<n>`` link target), as tagged on I/O syscalls."""

    UNKNOWN = 0
    """not an fd-taking call, or the fd was not resolved"""
    FILE = 1
    """a regular file or directory"""
    SOCKET_INET = 2
    """a TCP/UDP socket (IPv4/IPv6)"""
    SOCKET_OTHER = 3
    """a unix, netlink or other socket"""
    PIPE = 4
    """a pipe or FIFO"""
    ANON = 5
    """eventfd, epoll, timerfd, signalfd, other anon inodes"""
    DEVICE = 6
    """a character/block device (/dev/null, ttys)"""


class FdCounts(BaseModel):
    """Open fds of a process by kind (``/proc/<pid>/fd``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: Small = 0
    socket_inet: Small = 0
    socket_other: Small = 0
    pipe: Small = 0
    anon: Small = 0
    device: Small = 0
    socket_listen: Small = Field(
        default=0,
        description="TCP sockets in the LISTEN state, counted in socket_inet too (a server's listening socket "
        "says nothing about a connection to a pool); 0 where the collector could not tell (older collectors)",
    )

    @model_validator(mode="after")
    def _listen_within_inet(self) -> Self:
        if self.socket_listen > self.socket_inet:
            msg = "socket_listen counts inet sockets: it cannot exceed socket_inet"
            raise ValueError(msg)
        return self

    @property
    def total(self) -> int:
        return self.file + self.socket_inet + self.socket_other + self.pipe + self.anon + self.device


class ProcessSample(BaseModel):
    """One process (thread group) of the stream at sample time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pid: int = Field(ge=1, le=(1 << 31) - 1, description="thread-group id (the process id)")
    comm: Comm = ""
    exe: ExePath = Field(default="", description="/proc/<pid>/exe target when readable")
    cpu_ns: Counter = Field(description="user + system CPU time of all its threads, cumulative")
    threads: Small = 0
    running: Small = Field(default=0, description="threads in state R (running or runnable)")
    rss_bytes: Counter = 0
    hugetlb_bytes: Counter = Field(default=0, description="HugetlbPages")
    fds: FdCounts | None = Field(
        default_factory=FdCounts,
        description="open fds by kind; null: the collector could not read the fd table (then the pod's socket "
        "count is unknown and the network gate never applies to it)",
    )


class ResourceSnapshot(BaseModel):
    """The cgroup's and its processes' counters at ``ts_ns`` (Unix-epoch ns). ``None``: not readable."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ts_ns: Counter
    cpu_ns: Counter | None = Field(default=None, description="cgroup CPU usage, cumulative")
    throttled_ns: Counter | None = Field(default=None, description="time throttled by the CPU quota, cumulative")
    memory_bytes: Counter | None = None
    hugetlb_bytes: Counter | None = None
    threads: Small | None = Field(default=None, description="tasks in the cgroup (pids.current)")
    processes: list[ProcessSample] = Field(default_factory=list, max_length=MAX_PROCESSES)
    processes_omitted: Small = 0

    @model_validator(mode="after")
    def _unique_pids(self) -> Self:
        if len({p.pid for p in self.processes}) != len(self.processes):
            msg = "a process appears twice in one sample"
            raise ValueError(msg)
        return self


class ResourceSample(BaseModel):
    """A ``ResourceSnapshot`` of one (pod, container) stream, as sent on the syscall topic."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["resource_sample"] = "resource_sample"
    envelope: Envelope
    source: Literal["cgroup", "replay"] = "cgroup"
    sample: ResourceSnapshot
