"""What a process's file descriptors are: ``/proc/<pid>/fd/<n>`` link targets classified as ``FdKind``.

* ``socket:[ino]``: the socket's protocol name from the ``system.sockprotoname`` extended attribute
  of the fd link (sockfs answers it with ``TCP``, ``UDPv6``, ``UNIX-STREAM``, ``NETLINK``...): IP
  protocols are ``SOCKET_INET``, the rest ``SOCKET_OTHER``. Where sockfs does not answer, the inode is
  looked up in the process's ``/proc/<pid>/net/{tcp,tcp6,udp,udp6,...}`` tables (read once per network
  namespace and round, ``NetInodes``); a socket in none of them is ``SOCKET_OTHER``.
* A TCP socket in the ``LISTEN`` state (column ``st`` = ``0A`` of ``/proc/<pid>/net/tcp{,6}``) is also
  counted as listening (``FdCounts.socket_listen``): a server's listening socket is not a connection to
  anything. A socket's state is remembered once it left ``CLOSE`` (a connected socket never listens), so
  the tables are read only in a round where a socket's state is not known yet.
* ``pipe:[ino]``: ``PIPE``; ``anon_inode:*`` and other ``name:[ino]`` pseudo files (namespaces):
  ``ANON``; ``/dev/*`` (but ``/dev/shm``): ``DEVICE``; any other path: ``FILE``.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field

from minerlens_core.schemas.resources import FdCounts, FdKind

MAX_FDS = 4096
"""Fds read per process and round (the rest are counted as truncated)."""

_INET_PROTOCOLS = frozenset(
    {
        "TCP",
        "TCPv6",
        "UDP",
        "UDPv6",
        "UDPLITE",
        "UDPLITEv6",
        "MPTCP",
        "MPTCPv6",
        "SCTP",
        "SCTPv6",
        "DCCP",
        "DCCPv6",
        "RAW",
        "RAWv6",
        "PING",
        "PINGv6",
        "L2TP/IP",
        "L2TP/IPv6",
    }
)
_NET_TABLES = ("tcp", "tcp6", "udp", "udp6", "udplite", "udplite6", "raw", "raw6")
_TCP_TABLES = frozenset({"tcp", "tcp6"})
_TCP_LISTEN = 0x0A
_TCP_CLOSE = 0x07
_NOT_TCP = -1
_XATTR = "system.sockprotoname"
_MAX_SOCKETS = 1 << 20


@dataclass
class NetInodes:
    """Inodes of the IP sockets of each network namespace, from ``/proc/<pid>/net/*`` (the fallback
    where sockfs has no ``sockprotoname`` attribute). Cleared by ``new_round``."""

    proc: str = "/proc"
    _by_ns: dict[str, dict[int, int]] = field(default_factory=dict)
    """network namespace -> inode of each IP socket -> its TCP state (``_NOT_TCP`` for UDP, raw...)"""
    reads: int = 0
    sockets: dict[str, FdKind] = field(default_factory=dict)
    """``socket:[ino]`` -> kind of the sockets seen (a socket keeps its protocol for life)"""
    _seen: dict[str, FdKind] = field(default_factory=dict)
    listening: dict[str, bool] = field(default_factory=dict)
    """``socket:[ino]`` -> whether the inet socket listens, for sockets whose state is settled"""
    _listening_seen: dict[str, bool] = field(default_factory=dict)

    def new_round(self) -> None:
        """Forget the namespaces' tables, and the sockets nobody held in the round that ended."""
        self._by_ns.clear()
        self.sockets, self._seen = self._seen, {}
        self.listening, self._listening_seen = self._listening_seen, {}

    def saw(self, target: str, kind: FdKind) -> None:
        if len(self._seen) < _MAX_SOCKETS:
            self._seen[target] = kind

    def _table(self, pid: int) -> dict[int, int]:
        try:
            ns = os.readlink(f"{self.proc}/{pid}/ns/net")
        except OSError:
            ns = f"pid:{pid}"
        table = self._by_ns.get(ns)
        if table is None:
            table = self._by_ns[ns] = self._read(pid)
        return table

    def is_inet(self, pid: int, inode: int) -> bool:
        return inode in self._table(pid)

    def is_listening(self, pid: int, target: str) -> bool:
        """Whether the inet socket ``socket:[ino]`` of ``pid`` is a TCP socket in the LISTEN state."""
        known = self.listening.get(target)
        if known is None:
            inode = target[8:-1]
            state = self._table(pid).get(int(inode), _TCP_CLOSE) if inode.isdigit() else _NOT_TCP
            known = state == _TCP_LISTEN
            if state != _TCP_CLOSE and len(self.listening) < _MAX_SOCKETS:
                self.listening[target] = known  # settled: a socket that left CLOSE never starts listening
        if len(self._listening_seen) < _MAX_SOCKETS:
            self._listening_seen[target] = known
        return known

    def _read(self, pid: int) -> dict[int, int]:
        found: dict[int, int] = {}
        for name in _NET_TABLES:
            tcp = name in _TCP_TABLES
            try:
                with open(f"{self.proc}/{pid}/net/{name}", "rb") as f:
                    self.reads += 1
                    next(f, None)  # header line
                    for line in f:
                        parts = line.split()
                        if len(parts) > 9 and parts[9].isdigit():
                            found[int(parts[9])] = _tcp_state(parts[3]) if tcp else _NOT_TCP
            except OSError:
                continue
        return found


def _tcp_state(field: bytes) -> int:
    try:
        return int(field, 16)
    except ValueError:
        return _NOT_TCP


def classify_target(target: str) -> FdKind:
    """Kind of an fd from its link target; sockets come back as ``SOCKET_OTHER`` (see ``socket_kind``)."""
    if target.startswith("socket:"):
        return FdKind.SOCKET_OTHER
    if target.startswith("pipe:"):
        return FdKind.PIPE
    if target.startswith("/"):
        if target.startswith("/dev/") and not target.startswith("/dev/shm/"):
            return FdKind.DEVICE
        return FdKind.FILE
    if target.startswith("anon_inode:") or ":[" in target:
        return FdKind.ANON
    return FdKind.FILE


def socket_kind(link: str, target: str, pid: int, net: NetInodes | None) -> FdKind:
    """``SOCKET_INET`` or ``SOCKET_OTHER`` for the socket behind the fd link ``link``."""
    if net is not None:
        known = net.sockets.get(target)
        if known is not None:
            return known
    kind = _socket_kind(link, target, pid, net)
    if net is not None and len(net.sockets) < _MAX_SOCKETS:
        net.sockets[target] = kind
    return kind


def _socket_kind(link: str, target: str, pid: int, net: NetInodes | None) -> FdKind:
    try:
        proto = os.getxattr(link, _XATTR).rstrip(b"\0").decode("ascii", "replace")
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ESRCH, errno.EBADF) or net is None:
            return FdKind.SOCKET_OTHER
        inode = target[8:-1]
        return FdKind.SOCKET_INET if inode.isdigit() and net.is_inet(pid, int(inode)) else FdKind.SOCKET_OTHER
    return FdKind.SOCKET_INET if proto in _INET_PROTOCOLS else FdKind.SOCKET_OTHER


def fd_kind(proc: str, pid: int, fd: int, net: NetInodes | None = None) -> FdKind:
    """Kind of one fd of a live process now; ``UNKNOWN`` when the fd (or the process) is gone."""
    link = f"{proc}/{pid}/fd/{fd}"
    try:
        target = os.readlink(link)
    except OSError:
        return FdKind.UNKNOWN
    kind = classify_target(target)
    return socket_kind(link, target, pid, net) if kind is FdKind.SOCKET_OTHER else kind


@dataclass
class FdScan:
    kinds: dict[int, int]
    """fd number -> ``FdKind`` code"""
    truncated: bool = False
    """the process had more than ``MAX_FDS`` fds: only the first were read"""
    listening: int = 0
    """inet sockets among ``kinds`` that are TCP sockets in the LISTEN state"""

    def counts(self) -> FdCounts:
        c = [0] * (max(FdKind) + 1)
        for k in self.kinds.values():
            c[k] += 1
        return FdCounts(
            file=c[FdKind.FILE],
            socket_inet=c[FdKind.SOCKET_INET],
            socket_other=c[FdKind.SOCKET_OTHER],
            pipe=c[FdKind.PIPE],
            anon=c[FdKind.ANON],
            device=c[FdKind.DEVICE],
            socket_listen=min(self.listening, c[FdKind.SOCKET_INET]),
        )


def scan_fds(
    proc: str, pid: int, net: NetInodes | None = None, max_fds: int = MAX_FDS, pid_dir: int | None = None
) -> FdScan | None:
    """Every open fd of ``pid`` (up to ``max_fds``) by kind; ``None`` when the process is gone or its fd table
    (the directory, or its links: ptrace access) is unreadable.

    ``pid_dir``: ``/proc/<pid>`` already open (the links are then read relative to it).
    """
    fd_path = f"{proc}/{pid}/fd"
    try:
        fd_dir = os.open(fd_path if pid_dir is None else "fd", os.O_RDONLY | os.O_DIRECTORY, dir_fd=pid_dir)
    except OSError:
        return None
    try:
        names = os.listdir(fd_dir)
        kinds: dict[int, int] = {}
        listening = 0
        for name in names[:max_fds]:
            if not name.isdigit():
                continue
            try:
                target = os.readlink(name, dir_fd=fd_dir)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EPERM):
                    return None  # not ours to read (no CAP_SYS_PTRACE): unreadable, not "no fds"
                continue  # closed meanwhile
            kind = classify_target(target)
            if kind is FdKind.SOCKET_OTHER:
                kind = socket_kind(f"{fd_path}/{name}", target, pid, net)
                if net is not None:
                    net.saw(target, kind)
                    if kind is FdKind.SOCKET_INET and net.is_listening(pid, target):
                        listening += 1
            kinds[int(name)] = int(kind)
        return FdScan(kinds, truncated=len(names) > max_fds, listening=listening)
    except OSError:
        return None
    finally:
        os.close(fd_dir)
