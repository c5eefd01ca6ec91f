"""Fallback capture source: ``strace`` (ptrace) when tracefs cannot be used.

Each group of processes is traced by one ``strace -f -qq -ttt -s 0 -I2 [-n] -e trace=all -o FIFO
-p PID ...`` (``-n``, when this strace has it, prints syscall numbers; ``-s 0`` skips string
decoding; ``-I2`` lets SIGTERM end strace, which ``-o FILE CMD`` would otherwise ignore);
``StraceSource(command=[...])`` runs a command under ``strace ... -- CMD`` instead. The output
is read from the FIFO as it comes and parsed line by line with the importer's
:class:`~minerlens_core.traces.importers.StraceStream` (one parser per strace, same code as
``import_files(..., "strace")``). ``poll`` returns :class:`RawEvents` (Unix-epoch ns with
microsecond resolution, tid, syscall nr), in each strace's output order; the events of several
straces polled together are merged by time.

A syscall that blocks (``futex``, ``epoll_wait``, ``nanosleep``) is emitted as soon as strace
has printed its name, before the line ends, so events are not held back until it returns.

Cost: strace is roughly 10-100x slower than kernel-side capture, and it PERTURBS the traced
programs: every syscall stops the calling thread twice for the tracer (ptrace), so syscall-heavy
programs run much slower, timing between threads changes, and a process can be traced by only
one tracer at a time (``add_pids`` skips tasks already traced; an attach refused by the kernel,
e.g. by Yama ``ptrace_scope`` or an existing tracer, is logged). Use it for development, tests
and hosts without tracefs, never as the production capture.

``stop()`` ends only the strace processes this source started (SIGTERM, then SIGKILL, by pid):
attached programs are detached and keep running; a command started by strace receives strace's
SIGTERM, as strace forwards it to the child it started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from minerlens_core.errors import CaptureError
from minerlens_core.syscalls import Arch, host_arch, syscall_number
from minerlens_core.traces.importers import LineError, StraceStream

from minerlens_collector.events import RawEvents

log = logging.getLogger(__name__)

_READ_SIZE = 1 << 16
_STOP_WAIT_S = 5.0
_ATTACH_WAIT_S = 5.0
_CALL_START = re.compile(rb"\d+\s+\d+\.\d+\s+(?:\[\s*\d+\]\s+)?[A-Za-z_]\w*\(")


@cache
def _supports(strace: str, option: str) -> bool:
    """Whether this strace accepts ``option`` (``-n`` needs strace >= 5.x)."""
    try:
        done = subprocess.run(
            [strace, option, "-e", "trace=none", "true"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _tgid(tid: int) -> int | None:
    """Thread-group id of a task (None when it is gone)."""
    try:
        status = Path(f"/proc/{tid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"^Tgid:\s*(\d+)", status, re.MULTILINE)
    return int(m.group(1)) if m else None


def _all_traced_by(tgid: int, tracer: int) -> bool:
    """Every thread of ``tgid`` has ``tracer`` as TracerPid (True too when the process is gone)."""
    try:
        tasks = os.listdir(f"/proc/{tgid}/task")
    except OSError:
        return True
    for task in tasks:
        try:
            status = Path(f"/proc/{tgid}/task/{task}/status").read_text()
        except OSError:
            continue  # the thread just ended
        m = re.search(r"^TracerPid:\s*(\d+)", status, re.MULTILINE)
        if m is None or int(m.group(1)) != tracer:
            return False
    return True


@dataclass
class _Tracer:
    """One strace process, the FIFO it writes and the parser of its output."""

    proc: subprocess.Popen[bytes]
    fd: int  # read end of the FIFO, non-blocking
    hold_fd: int  # our write end: reads never see EOF before strace opens the FIFO
    stream: StraceStream
    stderr: Path
    carry: bytes = b""
    carry_emitted: bool = False
    done: bool = False
    ts: list[int] = field(default_factory=list)
    tid: list[int] = field(default_factory=list)
    nr: list[int] = field(default_factory=list)


class StraceSource:
    """:class:`~minerlens_collector.agent.source.EventSource` on top of strace (see the module doc)."""

    name = "strace"

    def __init__(
        self,
        *,
        command: Sequence[str] | None = None,
        pids: Iterable[int] = (),
        strace: str = "strace",
        arch: Arch | None = None,
    ) -> None:
        self.command = list(command) if command else None
        self.arch = arch or host_arch()
        self.strace = strace
        self.malformed = 0
        self.unmapped: Counter[str] = Counter()
        self._initial = list(pids)
        self._tracers: list[_Tracer] = []
        self._traced: set[int] = set()
        self._workdir: Path | None = None
        self._pending: list[RawEvents] = []
        self._count = 0
        self._stopped = False

    # -- EventSource ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._workdir is not None:
            return
        if shutil.which(self.strace) is None:
            msg = f"strace source: {self.strace!r} not found; install strace or use the tracefs source"
            raise CaptureError(msg)
        self._workdir = Path(tempfile.mkdtemp(prefix="minerlens-strace-"))
        if self.command:
            self._spawn(["--", *self.command])
        if self._initial:
            self.add_pids(self._initial)

    def add_pids(self, pids: Iterable[int]) -> None:
        """Trace these tasks (and, with ``-f``, everything they start) unless already traced."""
        if self._workdir is None:
            self._initial.extend(pids)
            return
        if self._stopped:
            return
        groups: list[int] = []
        for tid in pids:
            if tid in self._traced:
                continue
            tgid = _tgid(tid)
            if tgid is None or tgid in self._traced or tgid in groups:
                continue
            groups.append(tgid)
        if groups:
            self._traced.update(groups)
            tracer = self._spawn([arg for pid in groups for arg in ("-p", str(pid))])
            self._wait_attached(tracer, groups)

    def poll(self, timeout_s: float) -> RawEvents:
        """Events printed since the last poll, waiting up to ``timeout_s`` for the first ones."""
        parts, self._pending = self._pending, []
        live = [t for t in self._tracers if not t.done]
        if not parts:
            if not live:  # nothing traced (yet): wait like a source with no events would
                time.sleep(max(timeout_s, 0.0))
                return RawEvents.empty()
            with contextlib.suppress(InterruptedError):
                select.select([t.fd for t in live], [], [], max(timeout_s, 0.0))
        for tracer in live:
            self._read(tracer)
            if tracer.proc.poll() is not None:
                self._finish(tracer)  # drains what strace wrote before exiting
            parts.append(self._take(tracer))
        return _merge(parts)

    def loss_delta(self) -> dict[int, int]:
        """strace loses no event (it slows the tracee down instead): always empty."""
        return {}

    def stop(self) -> None:
        """End the straces this source started (by pid) and keep their last events for ``poll``."""
        self._stopped = True
        for tracer in self._tracers:
            if tracer.done:
                continue
            if tracer.proc.poll() is None:
                tracer.proc.terminate()
                try:
                    tracer.proc.wait(_STOP_WAIT_S)
                except subprocess.TimeoutExpired:
                    tracer.proc.kill()
                    tracer.proc.wait()
            self._finish(tracer)
            self._pending.append(self._take(tracer))
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    # -- conveniences ---------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """Every strace started so far has exited (e.g. the traced command ended)."""
        return bool(self._tracers) and all(t.done for t in self._tracers)

    def events(self, timeout_s: float = 0.1) -> Iterator[RawEvents]:
        """Poll until every strace has exited (command mode), yielding non-empty batches."""
        while self._pending or (self._tracers and not self.finished):
            ev = self.poll(timeout_s)
            if len(ev):
                yield ev

    # -- internals ------------------------------------------------------------------------------
    @staticmethod
    def _wait_attached(tracer: _Tracer, tgids: list[int]) -> None:
        """Return once strace traces every thread of ``tgids`` (or gave up), so no syscall is missed."""
        deadline = time.monotonic() + _ATTACH_WAIT_S
        pending = set(tgids)
        while pending and time.monotonic() < deadline and tracer.proc.poll() is None:
            pending = {pid for pid in pending if not _all_traced_by(pid, tracer.proc.pid)}
            if pending:
                time.sleep(0.005)
        if pending:
            log.warning("strace source: not attached (yet) to %s", sorted(pending))

    def _spawn(self, target: list[str]) -> _Tracer:
        assert self._workdir is not None
        self._count += 1
        fifo = self._workdir / f"out.{self._count}"
        os.mkfifo(fifo, 0o600)
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        hold = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        stderr = self._workdir / f"err.{self._count}"
        options = [opt for opt in ("-n",) if _supports(self.strace, opt)]
        if target[0] == "--" and _supports(self.strace, "--kill-on-exit"):
            options.append("--kill-on-exit")  # the command dies with strace, even on SIGKILL
        # -I2: a SIGTERM ends strace (with "-o FILE CMD" strace would ignore it by default, -I4)
        argv = [self.strace, "-f", "-qq", "-ttt", "-s", "0", "-I2", *options, "-e", "trace=all", "-o", str(fifo)]
        argv += target
        with stderr.open("wb") as err:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=err)
            except OSError as exc:
                os.close(fd)
                os.close(hold)
                msg = f"cannot run strace: {exc}"
                raise CaptureError(msg) from exc
        log.info("strace source: pid %d traces %s", proc.pid, " ".join(target))
        tracer = _Tracer(proc, fd, hold, StraceStream(self.arch, track_tasks=False), stderr)
        self._tracers.append(tracer)
        return tracer

    def _read(self, tracer: _Tracer) -> None:
        while True:
            try:
                data = os.read(tracer.fd, _READ_SIZE)
            except BlockingIOError:
                break
            if not data:
                break
            self._consume(tracer, data)

    def _consume(self, tracer: _Tracer, data: bytes) -> None:
        buf = tracer.carry + data
        lines = buf.split(b"\n")
        tracer.carry = lines.pop()
        for i, line in enumerate(lines):
            emitted = tracer.carry_emitted and i == 0
            self._line(tracer, line, count=not emitted)
        if lines:
            tracer.carry_emitted = False
        if tracer.carry and not tracer.carry_emitted and _CALL_START.match(tracer.carry):
            # a syscall still in progress: emit its entry now, the line ends when it returns
            self._line(tracer, tracer.carry, count=True, partial=True)
            tracer.carry_emitted = True

    def _line(self, tracer: _Tracer, raw: bytes, *, count: bool, partial: bool = False) -> None:
        text = raw.decode("utf-8", "replace")
        if not text.strip():
            return
        try:
            entry = tracer.stream.feed(text)
        except LineError as exc:
            if not partial:
                self.malformed += 1
                log.debug("strace source: malformed line (%s): %.200s", exc.reason, text)
            return
        if entry is None or not count:
            return
        nr = entry.nr if entry.nr is not None else syscall_number(entry.name or "", self.arch)
        if nr is None:
            self.unmapped[entry.name or "?"] += 1
            return
        self._traced.add(entry.tid)
        tracer.ts.append(entry.ts_ns if entry.ts_ns is not None else -1)
        tracer.tid.append(entry.tid)
        tracer.nr.append(nr)

    def _finish(self, tracer: _Tracer) -> None:
        self._read(tracer)
        if tracer.carry:  # last line without newline
            self._line(tracer, tracer.carry, count=not tracer.carry_emitted)
            tracer.carry = b""
        tracer.done = True
        for fd in (tracer.fd, tracer.hold_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        code = tracer.proc.returncode
        if code not in (0, None, -15):
            err = tracer.stderr.read_text(errors="replace").strip() if tracer.stderr.exists() else ""
            log.warning("strace source: strace pid %d exited with %s: %s", tracer.proc.pid, code, err[-500:])

    @staticmethod
    def _take(tracer: _Tracer) -> RawEvents:
        ev = RawEvents(np.array(tracer.ts, np.int64), np.array(tracer.tid, np.int32), np.array(tracer.nr, np.int64))
        tracer.ts, tracer.tid, tracer.nr = [], [], []
        return ev


def _merge(parts: list[RawEvents]) -> RawEvents:
    """Concatenate; when several straces contributed, order by time (stable within each)."""
    parts = [p for p in parts if len(p)]
    if len(parts) <= 1:
        return parts[0] if parts else RawEvents.empty()
    ev = RawEvents.concat(parts)
    order = np.argsort(ev.ts_ns, kind="stable")
    return RawEvents(ev.ts_ns[order], ev.tid[order], ev.nr[order])
