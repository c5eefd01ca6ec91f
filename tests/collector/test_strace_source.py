"""The strace fallback source against a real program: exact getppid counts, attach, stop, streaming."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from minerlens_collector.agent.strace_source import StraceSource
from minerlens_collector.events import RawEvents
from minerlens_core.syscalls import host_arch, syscall_number

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")

GETPPID = syscall_number("getppid", host_arch())
CALLS = 1000

PROGRAM = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

/* argv: TIDFILE [GOFILE [SLEEP_S]]: write the tid, wait for GOFILE, getppid x1000, sleep. */
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "w");
    if (!f) return 2;
    fprintf(f, "%ld\n", (long)syscall(SYS_gettid));
    fclose(f);
    if (argc > 2 && argv[2][0]) {
        struct timespec pause = {0, 1000000};
        while (access(argv[2], F_OK) != 0) nanosleep(&pause, NULL);
    }
    for (int i = 0; i < 1000; i++) syscall(SYS_getppid);
    if (argc > 3) {
        struct timespec nap = {atoi(argv[3]), 0};
        nanosleep(&nap, NULL);
    }
    return 0;
}
"""


@pytest.fixture
def program(tmp_path: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("needs a C compiler")
    src = tmp_path / "getppid1000.c"
    src.write_text(PROGRAM)
    exe = tmp_path / "getppid1000"
    subprocess.run([cc, "-O2", "-o", str(exe), str(src)], check=True)
    return exe


def wait_for(cond: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def tracer_pid(pid: int) -> int:
    m = re.search(r"^TracerPid:\s*(\d+)", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    return int(m.group(1)) if m else 0


def getppid_of(ev: RawEvents, tid: int) -> int:
    return int(((ev.tid == tid) & (ev.nr == GETPPID)).sum())


def test_command_under_strace_sees_exactly_1000_getppid(program: Path, tmp_path: Path) -> None:
    tidfile = tmp_path / "tid"
    source = StraceSource(command=[str(program), str(tidfile)])
    source.start()
    try:
        ev = RawEvents.concat(list(source.events(0.05)))
    finally:
        source.stop()
    tid = int(tidfile.read_text())
    assert getppid_of(ev, tid) == CALLS
    assert int((ev.nr == GETPPID).sum()) == CALLS
    assert set(ev.tid.tolist()) == {tid}
    assert int(ev.nr[0]) == syscall_number("execve", host_arch())
    assert (np.diff(ev.ts_ns) >= 0).all()
    assert abs(int(ev.ts_ns[0]) / 1e9 - time.time()) < 120
    assert source.malformed == 0
    assert not source.unmapped
    assert source.loss_delta() == {}


def test_attach_with_add_pids_sees_exactly_1000_getppid(program: Path, tmp_path: Path) -> None:
    tidfile, go = tmp_path / "tid", tmp_path / "go"
    proc = subprocess.Popen([str(program), str(tidfile), str(go)])
    source = StraceSource()
    try:
        wait_for(lambda: tidfile.exists() and tidfile.read_text().strip() != "")
        tid = int(tidfile.read_text())
        source.start()
        source.add_pids([tid, tid])
        assert tracer_pid(tid) != 0  # add_pids returns once strace traces the process
        source.add_pids([tid])  # already traced: no second strace (it would be refused anyway)
        go.touch()
        parts = []
        deadline = time.monotonic() + 60
        while not source.finished and time.monotonic() < deadline:
            parts.append(source.poll(0.05))
        assert proc.wait(10) == 0
    finally:
        source.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    parts.append(source.poll(0))
    ev = RawEvents.concat(parts)
    assert getppid_of(ev, tid) == CALLS
    assert int((ev.nr == GETPPID).sum()) == CALLS


def test_stop_ends_only_its_strace_and_leaves_attached_programs_running(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    source = StraceSource()
    try:
        source.start()
        source.add_pids([sleeper.pid])
        straced = tracer_pid(sleeper.pid)
        assert straced != 0
        source.stop()
        wait_for(lambda: tracer_pid(sleeper.pid) == 0)
        assert sleeper.poll() is None  # detached, still running
        assert not Path(f"/proc/{straced}").exists() or "zombie" in Path(f"/proc/{straced}/status").read_text()
        source.stop()  # idempotent
    finally:
        sleeper.kill()
        sleeper.wait()


def test_events_stream_while_the_program_runs(program: Path, tmp_path: Path) -> None:
    """A blocking syscall is delivered while it blocks, before the program ends."""
    tidfile = tmp_path / "tid"
    source = StraceSource(command=[str(program), str(tidfile), "", "30"])
    source.start()
    sleeps = {syscall_number("nanosleep", host_arch()), syscall_number("clock_nanosleep", host_arch())}
    seen = RawEvents.empty()
    try:
        deadline = time.monotonic() + 30
        while not set(seen.nr.tolist()) & sleeps and time.monotonic() < deadline:
            seen = RawEvents.concat([seen, source.poll(0.05)])
        assert not source.finished  # the program sleeps 30 s: its nanosleep came while it blocks
    finally:
        started = time.monotonic()
        source.stop()
    assert time.monotonic() - started < 10  # stop() does not wait for the program
    tid = int(tidfile.read_text())
    assert getppid_of(seen, tid) == CALLS
    assert int(seen.nr[-1]) in sleeps
    # strace passed its SIGTERM on to the command it started
    wait_for(lambda: not Path(f"/proc/{tid}").exists() or "zombie" in Path(f"/proc/{tid}/status").read_text())
