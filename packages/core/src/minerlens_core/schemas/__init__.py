"""The versioned message contract shared by every minerlens service."""

from minerlens_core.schemas.envelope import SCHEMA_VERSION, ContainerImage, Envelope, PodRef
from minerlens_core.schemas.events import (
    DropReport,
    SyscallBatch,
    SyscallStreamMessage,
    TaskInfo,
    decode_syscall_stream,
)
from minerlens_core.schemas.resources import (
    FdCounts,
    FdKind,
    ProcessSample,
    ResourceSample,
    ResourceSnapshot,
)

__all__ = [
    "SCHEMA_VERSION",
    "ContainerImage",
    "DropReport",
    "Envelope",
    "FdCounts",
    "FdKind",
    "PodRef",
    "ProcessSample",
    "ResourceSample",
    "ResourceSnapshot",
    "SyscallBatch",
    "SyscallStreamMessage",
    "TaskInfo",
    "decode_syscall_stream",
]
