"""A tracefs instance of our own: its ring buffer, clock, pid filter and ``raw_syscalls:sys_enter``.

Kernel facts this code relies on (checked on 6.18):

* ``set_event_pid`` matches the *thread* id (``task->pid``), so a multi-threaded process needs all
  of ``/proc/<pid>/task/*``; ``options/event-fork`` then adds new children/threads and drops exited
  ones by itself.
* An empty ``set_event_pid`` means *no filter* (everything is traced), so an empty set is written
  as pid 0 (the idle tasks, which make no syscalls).
* A write of a pid that does not exist is accepted silently; a malformed one gives EINVAL and then
  nothing of that write is applied. Python's ``open(path, "a")`` fails with EINVAL on this file
  (its seek to the end), so appending uses ``os.open(O_WRONLY | O_APPEND)``.

Permissions (measured in tests/collector/test_capabilities_live.py): creating an instance, configuring it
and reading its ``trace_pipe_raw`` are gated by file permissions only (tracefs is ``0700 root``): uid 0
needs no capability at all, another uid needs CAP_DAC_OVERRIDE; CAP_SYS_ADMIN is needed only to mount
tracefs. Access is therefore checked with the effective ids and capabilities (``faccessat(AT_EACCESS)``),
not with ``access()``, which ignores a non-root process's capabilities.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from minerlens_core.errors import CaptureError

from minerlens_collector.agent.tracefs.format import SysEnterFormat, load_format

log = logging.getLogger(__name__)
TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
_CLOCKS = {"mono": time.CLOCK_MONOTONIC, "boot": time.CLOCK_BOOTTIME}
_EMPTY_PID_SET = "0"
_NO_PERMISSION = (
    "run the collector as uid 0 (tracefs files belong to root; no capability is needed then) "
    "or with CAP_DAC_OVERRIDE; CAP_SYS_ADMIN alone does not help"
)


def _may(path: Path, mode: int) -> bool:
    """``access()`` with the effective uid and capabilities (what an open or mkdir will be judged by)."""
    return os.access(path, mode, effective_ids=os.access in os.supports_effective_ids)


def _mount_tracefs(target: Path) -> bool:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.mount(b"nodev", str(target).encode(), b"tracefs", 0, None) == 0  # type: ignore[no-any-return]


def find_tracefs(mount: bool = True) -> Path:
    """The tracefs mount point; mounts it at /sys/kernel/tracing when absent and ``mount`` is set."""
    for path in TRACEFS_CANDIDATES:
        if path.is_dir() and not _may(path, os.R_OK | os.X_OK):
            msg = f"no permission to use tracefs at {path} (uid {os.geteuid()}): {_NO_PERMISSION}"
            raise CaptureError(msg)
        if (path / "instances").is_dir():
            return path
    if mount and TRACEFS_CANDIDATES[0].is_dir() and _mount_tracefs(TRACEFS_CANDIDATES[0]):
        return TRACEFS_CANDIDATES[0]
    msg = (
        "tracefs is not mounted (looked in /sys/kernel/tracing and /sys/kernel/debug/tracing); "
        "mount it with `mount -t tracefs nodev /sys/kernel/tracing` (needs CAP_SYS_ADMIN)"
    )
    raise CaptureError(msg)


def is_available() -> bool:
    """True when an instance with raw_syscalls:sys_enter can be created here (no side effects)."""
    for path in TRACEFS_CANDIDATES:
        inst = path / "instances"
        if inst.is_dir():
            ok = _may(inst, os.W_OK | os.X_OK)
            return ok and (path / "events" / "raw_syscalls" / "sys_enter").is_dir()
    return False


def _clock_offset_ns(clock: int) -> int:
    """CLOCK_REALTIME - ``clock`` in ns, from the tightest of a few sandwiched readings."""
    best_gap, best = 1 << 62, 0
    for _ in range(7):
        a = time.clock_gettime_ns(clock)
        real = time.time_ns()
        b = time.clock_gettime_ns(clock)
        if b - a < best_gap:
            best_gap, best = b - a, real - (a + b) // 2
    return best


class TracefsInstance:
    """``instances/<name>`` configured for sys_enter capture; removed again by :meth:`close`."""

    def __init__(
        self,
        name: str,
        buffer_kb: int = 8192,
        subbuf_kb: int | None = 64,
        clock: str = "mono",
        buffer_percent: int = 25,
        overwrite: bool = True,
        root: Path | None = None,
    ) -> None:
        if not name or "/" in name or name.startswith("."):
            msg = f"invalid tracefs instance name {name!r}"
            raise CaptureError(msg)
        if clock not in _CLOCKS:
            msg = f"trace clock {clock!r} not supported; use one of {sorted(_CLOCKS)}"
            raise CaptureError(msg)
        self.name = name
        self.buffer_kb = buffer_kb
        self.subbuf_kb = subbuf_kb
        self.clock = clock
        self.buffer_percent = buffer_percent
        self.overwrite = overwrite
        self._root = root
        self.path = Path()
        self.format: SysEnterFormat | None = None
        self.cpus: list[int] = []
        self._open = False

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> TracefsInstance:
        root = self._root or find_tracefs()
        self.path = root / "instances" / self.name
        if self.path.exists():
            self._rmdir()  # a leftover of a crashed run under our own name
        try:
            self.path.mkdir()
        except PermissionError as exc:
            msg = f"not permitted to create tracefs instance {self.path} (uid {os.geteuid()}): {_NO_PERMISSION}"
            raise CaptureError(msg) from exc
        except OSError as exc:
            msg = f"cannot create tracefs instance {self.path}: {exc.strerror or exc}"
            raise CaptureError(msg) from exc
        self._open = True
        try:
            self._configure()
        except BaseException:
            self.close()
            raise
        return self

    def _configure(self) -> None:
        self.write("tracing_on", "0")
        if self.subbuf_kb and (self.path / "buffer_subbuf_size_kb").exists():
            try:
                self.write("buffer_subbuf_size_kb", str(self.subbuf_kb))
            except CaptureError as exc:  # e.g. EINVAL above the kernel's maximum (512 KiB on 6.18)
                log.warning("keeping the default sub-buffer size: %s", exc)
        self.write("buffer_size_kb", str(self.buffer_kb))
        self.write("trace_clock", self.clock)
        self.write("options/event-fork", "1")
        if (self.path / "options/record-tgid").exists():
            self.write("options/record-tgid", "1")  # tid -> tgid kept in saved_tgids, even after exit
        self.write("options/overwrite", "1" if self.overwrite else "0")
        if (self.path / "buffer_percent").exists():
            self.write("buffer_percent", str(self.buffer_percent))
        self.set_pids(())
        if not (self.path / "events/raw_syscalls/sys_enter/enable").exists():
            msg = "the kernel has no raw_syscalls:sys_enter tracepoint (CONFIG_FTRACE_SYSCALLS off?)"
            raise CaptureError(msg)
        self.write("events/raw_syscalls/sys_enter/enable", "1")
        self.format = load_format(self.path / "events")
        self.cpus = sorted(int(p.name[3:]) for p in (self.path / "per_cpu").glob("cpu[0-9]*"))

    def start(self) -> None:
        self.write("tracing_on", "1")

    def stop(self) -> None:
        if self._open:
            self.write("tracing_on", "0")

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        for rel, value in (("tracing_on", "0"), ("events/raw_syscalls/sys_enter/enable", "0")):
            with contextlib.suppress(CaptureError):
                self.write(rel, value)
        self._rmdir()

    def _rmdir(self) -> None:
        deadline = time.monotonic() + 2.0
        while True:
            try:
                self.path.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:  # EBUSY while a pipe of the instance is still open somewhere
                if exc.errno == errno.EBUSY and time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                msg = f"cannot remove tracefs instance {self.path}: {exc.strerror or exc}"
                raise CaptureError(msg) from exc
            return

    def __enter__(self) -> TracefsInstance:
        return self.open()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- files -----------------------------------------------------------------------------
    def write(self, rel: str, value: str, flags: int = os.O_WRONLY | os.O_TRUNC) -> None:
        path = self.path / rel
        try:
            fd = os.open(path, flags)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            msg = f"cannot write {value!r} to {path}: {exc.strerror or exc}"
            raise CaptureError(msg) from exc

    @property
    def page_size(self) -> int:
        if self.format is None:
            msg = "tracefs instance is not open"
            raise CaptureError(msg)
        return self.format.header.page_size

    def clock_offset_ns(self) -> int:
        """Add to a trace-clock timestamp to get Unix-epoch ns (CLOCK_REALTIME)."""
        return _clock_offset_ns(_CLOCKS[self.clock])

    # -- pid filter ------------------------------------------------------------------------
    def pids(self) -> list[int]:
        return sorted(int(tok) for tok in (self.path / "set_event_pid").read_text().split() if tok != _EMPTY_PID_SET)

    def set_pids(self, pids: Iterable[int], threads: bool = True) -> list[int]:
        """Replace the filter with ``pids`` (and their threads); returns the tids written."""
        tids = _expand(pids, threads)
        self.write("set_event_pid", " ".join(map(str, tids)) or _EMPTY_PID_SET)
        return tids

    def add_pids(self, pids: Iterable[int], threads: bool = True) -> list[int]:
        """Append ``pids`` (and their threads) to the filter; exited ones are skipped."""
        pids = list(pids)
        added = self._append(_expand(pids, threads))
        if threads and added:  # threads started while we wrote: from now on event-fork follows them
            added += self._append(sorted(set(_expand(pids, threads)) - set(added)))
        return added

    def _append(self, tids: list[int]) -> list[int]:
        flags = os.O_WRONLY | os.O_APPEND
        try:
            if tids:
                self.write("set_event_pid", " ".join(map(str, tids)), flags)
            return tids
        except CaptureError:
            pass
        added = []
        for tid in tids:  # one bad pid fails the whole write: retry one by one, skip the bad ones
            try:
                self.write("set_event_pid", str(tid), flags)
                added.append(tid)
            except CaptureError as exc:
                cause = exc.__cause__
                if not isinstance(cause, OSError) or cause.errno not in (errno.ESRCH, errno.EINVAL):
                    raise
        return added


def _expand(pids: Iterable[int], threads: bool) -> list[int]:
    """Live pids, each with all its threads when ``threads``; exited pids are dropped."""
    out: set[int] = set()
    for pid in pids:
        task_dir = Path(f"/proc/{int(pid)}/task")
        try:
            tids = [int(t) for t in os.listdir(task_dir)] if threads else []
        except OSError:
            continue  # exited
        if not threads and not task_dir.exists():
            continue
        out.add(int(pid))
        out.update(tids)
    return sorted(out)
