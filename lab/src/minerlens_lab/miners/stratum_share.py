"""How much of a miner's syscalls is stratum traffic, from an ``strace -f -yy`` log.

A syscall counts as stratum traffic when it works on the connection to the pool: its first argument is
a TCP socket whose peer is the pool (``-yy`` shows ``5<TCP:[127.0.0.1:40310->127.0.0.1:3333]>``), or
the same socket before it was connected (``socket()`` returning it, ``connect`` to the pool's port:
linked through the socket's inode), or a wait (``poll``/``select``: on that socket; ``epoll_wait``:
returning it ready). Timer wake-ups of an event loop, wake-up pipes and eventfds between threads, log
writes, and other TCP connections (the web server of a mixed pod) are not stratum traffic.

    strace -f -yy -qq -o miner.strace -- minerlens-miner ...
    stratum_share(Path("miner.strace"), pool_port=3333).share
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_LINE = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(?:\d\d:\d\d:\d\d(?:\.\d+)?\s+)?(.*)$")
_START = re.compile(r"^([a-z_0-9]+)\((.*)$")
_RESUMED = re.compile(r"^<\.\.\. ([a-z_0-9]+) resumed>(.*)$")
_UNFINISHED = " <unfinished ...>"
_FIRST_ARG = re.compile(r"^(\d+)<TCP(?:v6)?:\[([^\]]*)\]>")
_RETURNED = re.compile(r"= (\d+)<TCP(?:v6)?:\[([^\]]*)\]>")
_ANY_TCP = re.compile(r"(\d+)<TCP(?:v6)?:\[([^\]]*)\]>")
_WAITS = {"poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2"}
_EPOLL_DATA_FD = re.compile(r"data=\{(?:u32|fd)=(\d+)")


@dataclass
class StratumShare:
    total: int = 0
    stratum: int = 0
    by_syscall: Counter[str] = field(default_factory=Counter)
    """all syscalls by name"""
    stratum_by_syscall: Counter[str] = field(default_factory=Counter)

    @property
    def share(self) -> float:
        return self.stratum / self.total if self.total else 0.0


def _calls(lines: list[str]) -> list[tuple[str, str]]:
    """(name, arguments and result) of every syscall, an interrupted call's two halves joined."""
    pending: dict[str, tuple[str, str]] = {}
    out: list[tuple[str, str]] = []
    for line in lines:
        m = _LINE.match(line)
        if m is None:
            continue
        pid, text = m.group(1), m.group(2)
        if (r := _RESUMED.match(text)) is not None:
            name, head = pending.pop(pid, (r.group(1), ""))
            out.append((name, head + r.group(2)))
        elif (c := _START.match(text)) is not None:
            if text.endswith(_UNFINISHED):
                pending[pid] = (c.group(1), c.group(2)[: -len(_UNFINISHED)])
            else:
                out.append((c.group(1), c.group(2)))
    out.extend(pending.values())
    return out


class _PoolSockets:
    """Which socket annotations are the pool connection: connected ones by their peer, unconnected ones by
    the inode that a ``connect`` to the pool's port used."""

    def __init__(self, calls: list[tuple[str, str]], pool_port: int | None) -> None:
        self.port = pool_port
        self.inodes: set[str] = set()
        self.fds: set[str] = set()
        for name, text in calls:
            for fd, what in _ANY_TCP.findall(text):
                if self._peer_is_pool(what):
                    self.fds.add(fd)
            to_pool = pool_port is None or f"sin_port=htons({pool_port})" in text
            if name == "connect" and to_pool and (m := _FIRST_ARG.match(text)) is not None:
                self.inodes.add(m.group(2))
                self.fds.add(m.group(1))

    def _peer_is_pool(self, what: str) -> bool:
        return "->" in what and (self.port is None or what.endswith(f":{self.port}"))

    def matches(self, what: str) -> bool:
        return self._peer_is_pool(what) or what in self.inodes


def _on_pool(name: str, text: str, pool: _PoolSockets) -> bool:
    if name in _WAITS:
        if name.startswith("epoll"):
            return any(fd in pool.fds for fd in _EPOLL_DATA_FD.findall(text))
        return any(pool.matches(what) for _, what in _ANY_TCP.findall(text))
    first = _FIRST_ARG.match(text)
    if first is not None:
        return pool.matches(first.group(2))
    returned = _RETURNED.search(text)
    return returned is not None and pool.matches(returned.group(2))


def stratum_share(path: Path, pool_port: int | None = None) -> StratumShare:
    """Classify every syscall of an ``strace -f -yy`` log (written with ``-o``; ``-tt`` or not). Without
    ``pool_port`` every TCP connection counts as the pool's."""
    out = StratumShare()
    calls = _calls(path.read_text(errors="replace").splitlines())
    pool = _PoolSockets(calls, pool_port)
    for name, text in calls:
        out.total += 1
        out.by_syscall[name] += 1
        if _on_pool(name, text, pool):
            out.stratum += 1
            out.stratum_by_syscall[name] += 1
    return out
