"""Helpers for ``Workload.drive``: load generators that run outside the pod, bounded by the ``stop`` event.

The runner sets ``stop`` ``stop_margin(seconds)`` before the capture ends, so that a load generator
can finish (print its summary, read the server's counters) while the server in the pod still runs.
Every process started here is in its own session and is killed when ``stop`` is set.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


def stop_margin(seconds: float) -> float:
    """How long before the end of a capture the runner sets ``stop`` for the load generator."""
    return min(1.0, 0.15 * seconds)


def drive_window(seconds: float) -> float:
    """How long a load generator may run, from the start of the capture."""
    return max(0.5, seconds - stop_margin(seconds))


@dataclass
class Clock:
    """The drive's time budget, started when ``drive`` is entered (= when the pod's program starts)."""

    seconds: float
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = time.monotonic()

    def left(self) -> float:
        return drive_window(self.seconds) - (time.monotonic() - self.started)

    def whole_seconds_left(self, minimum: int = 1) -> int:
        """Seconds left, rounded down: for tools that take an integer duration (wrk -d, pgbench -T)."""
        return max(minimum, int(self.left()))


def wait_tcp(host: str, port: int, stop: threading.Event, timeout_s: float = 15.0) -> bool:
    """Wait until ``host:port`` accepts a connection; False when ``stop`` is set or on time-out."""
    deadline = time.monotonic() + timeout_s
    while not stop.is_set() and time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        stop.wait(0.05)
    return False


@dataclass
class ToolRun:
    argv: list[str]
    returncode: int | None
    """None when the tool was killed because ``stop`` was set (or it overran its timeout)"""
    stdout: str
    stderr: str
    seconds: float


def run_tool(
    argv: Sequence[str],
    stop: threading.Event,
    *,
    timeout_s: float | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> ToolRun:
    """Run a load generator to completion, or kill it (its whole session) once ``stop`` is set."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=None if env is None else {**os.environ, **env},
        start_new_session=True,
    )
    out: list[bytes] = []
    err: list[bytes] = []
    readers = [
        threading.Thread(target=lambda: out.append(proc.stdout.read() if proc.stdout else b""), daemon=True),
        threading.Thread(target=lambda: err.append(proc.stderr.read() if proc.stderr else b""), daemon=True),
    ]
    for r in readers:
        r.start()
    killed = False
    try:
        while proc.poll() is None:
            overran = timeout_s is not None and time.monotonic() - t0 > timeout_s
            if stop.wait(0.05) or overran:
                killed = True
                break
    finally:
        if proc.poll() is None:
            kill_session(proc)
        for r in readers:
            r.join(timeout=5)
    return ToolRun(
        list(argv),
        None if killed else proc.returncode,
        b"".join(out).decode(errors="replace"),
        b"".join(err).decode(errors="replace"),
        time.monotonic() - t0,
    )


def kill_session(proc: subprocess.Popen[bytes], grace_s: float = 1.0) -> None:
    """SIGTERM the process' session, SIGKILL it after ``grace_s``, and reap the process."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.wait(timeout=5)


def ticks(stop: threading.Event, clock: Clock, period_s: float) -> Iterator[int]:
    """Yield 0, 1, 2... once per ``period_s`` (the first at once) until ``stop`` or the drive window ends."""
    n = 0
    next_at = time.monotonic()
    while not stop.is_set() and clock.left() > 0:
        wait = next_at - time.monotonic()
        if wait > 0 and stop.wait(wait):
            return
        yield n
        n += 1
        next_at = max(next_at + period_s, time.monotonic())
