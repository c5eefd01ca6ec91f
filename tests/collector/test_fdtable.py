"""fd kinds from real /proc fd links (this test process's own fds) and the event tagger built on them."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from minerlens_collector.agent.fds import NetInodes, classify_target, fd_kind, scan_fds
from minerlens_collector.agent.fdtable import FdTable
from minerlens_core.schemas import FdKind
from minerlens_core.syscalls import host_arch, syscall_number

ARCH = host_arch()
WRITE = syscall_number("write", ARCH)
CLOSE = syscall_number("close", ARCH)
GETPID = syscall_number("getpid", ARCH)
PID = os.getpid()


@pytest.fixture
def fds(tmp_path: Path) -> Iterator[dict[str, int]]:
    """One fd of every kind, held by this process."""
    listener = socket.create_server(("127.0.0.1", 0))
    tcp = socket.create_connection(listener.getsockname())
    udp6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    unix_a, unix_b = socket.socketpair()
    r, w = os.pipe()
    f = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    null = os.open("/dev/null", os.O_WRONLY)
    ev = os.eventfd(0)
    out = {
        "tcp": tcp.fileno(),
        "listener": listener.fileno(),
        "udp6": udp6.fileno(),
        "unix": unix_a.fileno(),
        "pipe": w,
        "file": f,
        "null": null,
        "eventfd": ev,
    }
    try:
        yield out
    finally:
        for s in (listener, tcp, udp6, unix_a, unix_b):
            s.close()
        for fd in (r, w, f, null, ev):
            os.close(fd)


EXPECTED = {
    "tcp": FdKind.SOCKET_INET,
    "listener": FdKind.SOCKET_INET,
    "udp6": FdKind.SOCKET_INET,
    "unix": FdKind.SOCKET_OTHER,
    "pipe": FdKind.PIPE,
    "file": FdKind.FILE,
    "null": FdKind.DEVICE,
    "eventfd": FdKind.ANON,
}


def test_every_kind_of_fd_is_recognised(fds: dict[str, int]) -> None:
    for name, fd in fds.items():
        assert fd_kind("/proc", PID, fd) == EXPECTED[name], name
    assert fd_kind("/proc", PID, 1 << 30) == FdKind.UNKNOWN  # not open
    scan = scan_fds("/proc", PID)
    assert scan is not None
    for name, fd in fds.items():
        assert scan.kinds[fd] == EXPECTED[name]
    counts = scan.counts()
    assert counts.socket_inet >= 3
    assert counts.socket_other >= 2  # both ends of the socketpair
    assert counts.total == len(scan.kinds)


def test_link_targets() -> None:
    assert classify_target("/dev/shm/x") == FdKind.FILE
    assert classify_target("/dev/pts/3") == FdKind.DEVICE
    assert classify_target("/tmp/a (deleted)") == FdKind.FILE
    assert classify_target("anon_inode:[eventpoll]") == FdKind.ANON
    assert classify_target("net:[4026531840]") == FdKind.ANON
    assert classify_target("pipe:[123]") == FdKind.PIPE


def test_net_tables_fallback_finds_ip_sockets(fds: dict[str, int]) -> None:
    net = NetInodes("/proc")
    inode = int(os.readlink(f"/proc/self/fd/{fds['tcp']}")[8:-1])
    unix_inode = int(os.readlink(f"/proc/self/fd/{fds['unix']}")[8:-1])
    assert net.is_inet(PID, inode)
    assert not net.is_inet(PID, unix_inode)
    assert net.reads >= 2  # read once for this network namespace...
    reads = net.reads
    net.is_inet(PID, inode)
    assert net.reads == reads  # ...and cached until the next round


def _tag(table: FdTable, nrs: list[int], arg0: list[int], pids: list[int] | None = None) -> list[int]:
    n = len(nrs)
    pid = np.full(n, PID, np.int64) if pids is None else np.asarray(pids, np.int64)
    return table.tag(pid, np.asarray(nrs, np.int64), np.asarray(arg0, np.int64)).tolist()


def test_io_calls_are_tagged_and_others_are_not(fds: dict[str, int]) -> None:
    table = FdTable(ARCH)
    names = list(fds)
    tags = _tag(table, [WRITE] * len(names) + [GETPID], [fds[n] for n in names] + [fds["tcp"]])
    assert tags == [EXPECTED[n] for n in names] + [0]
    assert table.lookups == len(names)
    # resolved once, then cached
    assert _tag(table, [WRITE, WRITE], [fds["tcp"], fds["file"]]) == [FdKind.SOCKET_INET, FdKind.FILE]
    assert table.lookups == len(names)
    # fds that cannot be an fd, and events of unknown processes
    assert _tag(table, [WRITE, WRITE, WRITE], [-1, -100, 1 << 40]) == [0, 0, 0]
    assert _tag(table, [WRITE], [fds["tcp"]], pids=[-1]) == [0]


def test_the_samplers_map_is_used_without_lookups(fds: dict[str, int]) -> None:
    table = FdTable(ARCH)
    table.replace({PID: {fds["tcp"]: int(FdKind.FILE)}})  # what the sampler saw (here: deliberately stale)
    assert _tag(table, [WRITE], [fds["tcp"]]) == [FdKind.FILE]
    assert table.lookups == 0
    table.retain([])  # the process is gone from every pod: its map is forgotten
    assert len(table) == 0
    assert _tag(table, [WRITE], [fds["tcp"]]) == [FdKind.SOCKET_INET]


def test_close_separates_an_fd_numbers_lives(tmp_path: Path) -> None:
    """write(X) on a file, close(X), X reused by a socket, write(X): the tags follow the objects."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        table = FdTable(ARCH)
        f = os.open(tmp_path / "g", os.O_WRONLY | os.O_CREAT)
        assert _tag(table, [WRITE], [f]) == [FdKind.FILE]  # seen while open: cached
        os.close(f)
        s = socket.create_connection(listener.getsockname())
        assert s.fileno() == f  # the lowest free number again
        assert _tag(table, [WRITE, CLOSE, WRITE], [f, f, f]) == [FdKind.FILE, 0, FdKind.SOCKET_INET]
        # the same chunk seen cold: what X was before the close cannot be known now -> UNKNOWN, not a guess
        cold = FdTable(ARCH)
        assert _tag(cold, [WRITE, CLOSE, WRITE], [f, f, f]) == [0, 0, FdKind.SOCKET_INET]
        assert cold.closed_unknown == 1
        # a close at the end of a chunk: the next use is resolved afresh
        assert _tag(table, [WRITE, CLOSE], [f, f]) == [FdKind.SOCKET_INET, 0]
        s.close()
        assert _tag(table, [WRITE], [f]) == [0]
    finally:
        listener.close()


def test_lookups_are_bounded_per_call() -> None:
    """A pod writing to millions of bogus fd numbers cannot make the collector readlink them all."""
    table = FdTable(ARCH, max_lookups=10)
    bogus = list(range(100_000, 100_500))
    tags = _tag(table, [WRITE] * len(bogus), bogus)
    assert tags == [0] * len(bogus)
    assert table.lookups == 10
    assert table.unresolved == len(bogus) - 10
    assert not any(table._maps.get(PID, {}))  # nothing cached for fds that are not open
