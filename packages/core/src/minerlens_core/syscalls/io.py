"""Which syscalls move data through a file descriptor, and which ones can only mean a socket or a file.

The collector tags the fd argument (``args[0]``) of every ``FD_DATA_SYSCALLS`` call with its
``FdKind`` (``SyscallBatch.fd_kind``); the feature library splits I/O into socket and file I/O with
those tags and, where a call can only be one of them, with its name (``SOCKET_ONLY`` / ``FILE_ONLY``).
"""

from __future__ import annotations

_POSITIONAL_IO = frozenset({"pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2"})
"""Reads and writes at a file offset: data through an fd, and only on files."""
_SOCKET_MESSAGES = frozenset({"sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg"})
"""Datagram and message I/O: data through an fd, and only on sockets."""

FD_DATA_SYSCALLS: frozenset[str] = (
    frozenset({"read", "write", "readv", "writev", "splice", "sendfile"}) | _POSITIONAL_IO | _SOCKET_MESSAGES
)
"""Calls whose first argument is the fd data moves through (``sendfile``: the output fd)."""

SOCKET_ONLY: frozenset[str] = _SOCKET_MESSAGES | frozenset(
    {
        "socket",
        "connect",
        "accept",
        "accept4",
        "bind",
        "listen",
        "shutdown",
        "getsockopt",
        "setsockopt",
        "getsockname",
        "getpeername",
    }
)
"""Calls that only make sense on a socket, whatever the fd tags say (imported traces have none)."""

FILE_ONLY: frozenset[str] = _POSITIONAL_IO | frozenset(
    {
        "open",
        "openat",
        "openat2",
        "creat",
        "fsync",
        "fdatasync",
        "sync_file_range",
        "ftruncate",
        "truncate",
        "lseek",
        "getdents64",
        "fallocate",
        "copy_file_range",
        "rename",
        "renameat",
        "renameat2",
        "unlink",
        "unlinkat",
        "mkdir",
        "mkdirat",
    }
)
"""Calls that only make sense on files and paths."""
