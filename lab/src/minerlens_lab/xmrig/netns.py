"""A fresh network namespace with nothing but ``lo``: where the real XMRig and its pool run.

``LoopbackNetns.create()`` adds a named namespace (``ip netns add``), brings ``lo`` up and asserts
that it holds no other interface and no route that does not go through ``lo``, and that a connection
to a non-loopback address fails (``ENETUNREACH``). Programs enter it with ``nsenter --net=...``
(``exec_prefix``); Python code of this process enters it in a thread of its own (``run_in``:
``setns`` changes the network namespace of the calling thread only), which is how the lab asks the
pool for its counters and drives the web server of a pod from inside. ``delete()`` kills what is left
in it and removes it; namespaces left by a process that died are removed by the next ``create()``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from minerlens_lab.xmrig.fetch import XmrigError
from minerlens_lab.xmrig.hugepages import pid_alive

NETNS_DIR = Path("/run/netns")
PREFIX = "mlxmr"
_NAME = re.compile(rf"^{PREFIX}-(\d+)-[0-9a-f]+$")
CLONE_NEWNET = 0x4000_0000
PROBE_ADDRESSES = (("192.0.2.1", 9), ("1.1.1.1", 443))
"""non-loopback addresses a connection to which must fail inside the namespace (TEST-NET-1, a public one)"""

T = TypeVar("T")


class NetnsError(XmrigError):
    """The namespace cannot be made, or is not loopback-only."""


def _ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        msg = f"`ip {' '.join(args)}` failed: {done.stderr.strip()}"
        raise NetnsError(msg)
    return done.stdout


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@dataclass
class LoopbackNetns:
    name: str

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name

    @classmethod
    def create(cls) -> LoopbackNetns:
        remove_stale()
        ns = cls(f"{PREFIX}-{os.getpid()}-{secrets.token_hex(3)}")
        _ip("netns", "add", ns.name)
        try:
            _ip("-n", ns.name, "link", "set", "lo", "up")
            ns.assert_loopback_only()
        except BaseException:
            ns.delete()
            raise
        return ns

    def exec_prefix(self) -> list[str]:
        """argv prefix that runs a program inside the namespace (``nsenter`` then ``exec``: no extra process)."""
        return ["nsenter", f"--net={self.path}", "--"]

    # ---- checks ------------------------------------------------------------------------------------

    def links(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = json.loads(_ip("-n", self.name, "-j", "link", "show") or "[]")
        return out

    def routes(self) -> list[dict[str, Any]]:
        """Every IPv4 and IPv6 route of every table."""
        out: list[dict[str, Any]] = []
        for family in ("-4", "-6"):
            out += json.loads(_ip("-n", self.name, "-j", family, "route", "show", "table", "all") or "[]")
        return out

    def assert_loopback_only(self) -> None:
        """Raise ``NetnsError`` unless ``lo`` (up) is the only interface, every route goes through it, and
        connecting to a non-loopback address fails from inside."""
        links = self.links()
        names = [link.get("ifname") for link in links]
        if names != ["lo"]:
            msg = f"netns {self.name} has interfaces {names}, want only lo"
            raise NetnsError(msg)
        if "UP" not in links[0].get("flags", []):
            msg = f"netns {self.name}: lo is not up"
            raise NetnsError(msg)
        foreign = [r for r in self.routes() if r.get("dev") != "lo"]
        if foreign:
            msg = f"netns {self.name} has routes not via lo: {foreign}"
            raise NetnsError(msg)
        for host, port in PROBE_ADDRESSES:
            failure = self.run_in(_connect_error, host, port)
            if failure != errno.ENETUNREACH:
                msg = f"netns {self.name}: connecting to {host}:{port} gave {failure!r}, want ENETUNREACH"
                raise NetnsError(msg)

    # ---- entering ----------------------------------------------------------------------------------

    def run_in(self, fn: Callable[..., T], *args: Any, timeout_s: float = 60.0) -> T:
        """``fn(*args)`` in a fresh thread that entered this namespace; its result or its exception."""
        box: dict[str, Any] = {}

        def target() -> None:
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                ns_fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    _setns(ns_fd)
                finally:
                    os.close(ns_fd)
                try:
                    box["value"] = fn(*args)
                finally:
                    _setns(own)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                box["error"] = exc
            finally:
                os.close(own)

        thread = threading.Thread(target=target, name=f"in-{self.name}", daemon=True)
        thread.start()
        thread.join(timeout_s)
        if thread.is_alive():
            msg = f"{getattr(fn, '__name__', fn)} did not return within {timeout_s:.0f}s in netns {self.name}"
            raise NetnsError(msg)
        if "error" in box:
            raise box["error"]
        return box["value"]  # type: ignore[no-any-return]

    # ---- clean-up ----------------------------------------------------------------------------------

    def pids(self) -> list[int]:
        return [int(p) for p in _ip("netns", "pids", self.name, check=False).split() if p.isdigit()]

    def delete(self) -> None:
        """Kill every process still in the namespace, then remove it."""
        _kill_all(self.pids)
        if self.path.exists():
            _ip("netns", "del", self.name, check=False)

    def __enter__(self) -> LoopbackNetns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete()


def _connect_error(host: str, port: int) -> int | str:
    """The errno of a failing connection (or "connected")."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        try:
            s.connect((host, port))
        except OSError as exc:
            return exc.errno if exc.errno is not None else str(exc)
    return "connected"


def _kill_all(pids: Callable[[], list[int]], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (left := pids()) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def remove_stale() -> list[str]:
    """Remove the namespaces of this module whose creating process is gone; their names."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in NETNS_DIR.iterdir():
            found = _NAME.match(entry.name)
            if found and not pid_alive(int(found.group(1))):
                LoopbackNetns(entry.name).delete()
                removed.append(entry.name)
    return removed


def list_ours() -> list[str]:
    """Names of the namespaces this module made that still exist."""
    with contextlib.suppress(FileNotFoundError):
        return sorted(e.name for e in NETNS_DIR.iterdir() if _NAME.match(e.name))
    return []
