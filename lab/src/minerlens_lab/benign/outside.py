"""Processes a workload runs *outside* its pod for the whole capture: a job broker, a parameter server,
a replication master, a keepalive server - the other end of the pod's one long-lived connection,
standing for another pod or node.

Started in ``prepare`` (before the capture, so the pod finds them ready), stopped in ``cleanup`` (also
after a failure or Ctrl-C: the runner always calls it). Each runs in its own session and is killed with
it, children included; its output goes to ``<workdir>/<name>.out``.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from minerlens_lab.drive import kill_session, wait_tcp
from minerlens_lab.workload import RunContext

_running: dict[str, list[subprocess.Popen[bytes]]] = {}
_lock = threading.Lock()


def start_outside(
    ctx: RunContext, name: str, argv: Sequence[str], *, port: int | None = None, ready_s: float = 20.0
) -> subprocess.Popen[bytes]:
    """Start ``argv`` outside the pod; with ``port``, wait until it accepts connections on 127.0.0.1."""
    out = (ctx.workdir / f"{name}.out").open("ab")
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    finally:
        out.close()
    with _lock:
        _running.setdefault(str(ctx.workdir), []).append(proc)
    if port is not None and not wait_tcp("127.0.0.1", port, threading.Event(), timeout_s=ready_s):
        code = proc.poll()
        tail = output_of(ctx, name)[-400:]
        msg = f"{name} ({argv[0]}) did not listen on 127.0.0.1:{port} within {ready_s:.0f} s (exit {code}): {tail!r}"
        raise RuntimeError(msg)
    return proc


def output_of(ctx: RunContext, name: str) -> str:
    try:
        return (ctx.workdir / f"{name}.out").read_text(errors="replace")
    except FileNotFoundError:
        return ""


def still_running(ctx: RunContext) -> bool:
    """Whether every process started for this run is still alive (a crashed server fails the run)."""
    with _lock:
        procs = list(_running.get(str(ctx.workdir), []))
    return all(p.poll() is None for p in procs)


def stop_outside(ctx: RunContext) -> None:
    """Kill every process started for this run (newest first) and forget them."""
    with _lock:
        procs = _running.pop(str(ctx.workdir), [])
    for proc in reversed(procs):
        if proc.poll() is None:
            kill_session(proc)


def wait_file(path: Path, stop: threading.Event, timeout_s: float) -> bool:
    """Wait until ``path`` exists (a program in the pod says it is ready); False on stop or time-out."""
    deadline = time.monotonic() + timeout_s
    while not stop.is_set() and time.monotonic() < deadline:
        if path.exists():
            return True
        stop.wait(0.05)
    return False
