"""The versioned message contract shared by every minerlens service."""

from minerlens_core.schemas.envelope import SCHEMA_VERSION, Envelope, PodRef
from minerlens_core.schemas.events import (
    DropReport,
    SyscallBatch,
    SyscallStreamMessage,
    TaskInfo,
    decode_syscall_stream,
)

__all__ = [
    "SCHEMA_VERSION",
    "DropReport",
    "Envelope",
    "PodRef",
    "SyscallBatch",
    "SyscallStreamMessage",
    "TaskInfo",
    "decode_syscall_stream",
]
