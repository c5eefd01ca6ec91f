"""Per-process facts from procfs: CPU time, threads (and how many run), memory, executable.

Every reader returns ``None`` when the process (or thread) is gone or the file cannot be read: a
process may exit between any two reads, which is normal, never an error. Files are read with one
``os.open``/``os.read`` each (no Python file objects): the resource sampler reads a few per process
every second on every node.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_NS_PER_TICK = 1_000_000_000 // CLK_TCK
_READ_MAX = 1 << 16
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
"""what the contract refuses in text (``schemas.bounds``): C0/C1 controls, DEL, line/paragraph separators,
bidirectional overrides, lone surrogates"""
INT64_MAX = (1 << 63) - 1


def read_small(path: str, limit: int = _READ_MAX) -> bytes | None:
    """Content (at most ``limit`` bytes) of a procfs/cgroupfs file, ``None`` when missing or unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, _READ_MAX)
        if len(data) < _READ_MAX or limit <= _READ_MAX:
            return data[:limit]
        parts = [data]
        size = len(data)
        while size < limit and (chunk := os.read(fd, _READ_MAX)):
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)[:limit]
    except OSError:
        return None
    finally:
        os.close(fd)


def open_dir(path: str) -> int | None:
    """A directory fd (``/proc/<pid>``: pins that process, later reads of a reused pid fail), or ``None``."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


def read_at(dir_fd: int, name: str) -> bytes | None:
    """A small file below ``dir_fd`` (one read), ``None`` when missing or unreadable."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        return os.read(fd, _READ_MAX)
    except OSError:
        return None
    finally:
        os.close(fd)


def printable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with control characters replaced (comm and paths are chosen by
    whoever runs in the pod: they may hold anything)."""
    return _CONTROL.sub("?", text[:limit])


@dataclass(frozen=True, slots=True)
class ProcStat:
    """What ``/proc/<pid>/stat`` says about a process (or ``/proc/<pid>/task/<tid>/stat`` about a thread)."""

    comm: str
    state: str
    cpu_ns: int
    """utime + stime (all threads of the process; only this thread for a task's stat)"""
    threads: int


def parse_stat(raw: bytes) -> ProcStat | None:
    """Parse a ``stat`` line. The command name sits in parentheses and may itself hold ``)`` and spaces."""
    lp, rp = raw.find(b"("), raw.rfind(b")")
    if lp < 0 or rp < lp:
        return None
    rest = raw[rp + 2 :].split()
    # fields after comm: [0] state (field 3) ... [11] utime (14), [12] stime (15), [17] num_threads (20)
    try:
        utime, stime, threads = int(rest[11]), int(rest[12]), int(rest[17])
    except (IndexError, ValueError):
        return None
    cpu = min(max(utime + stime, 0) * _NS_PER_TICK, INT64_MAX)
    comm = raw[lp + 1 : rp].decode("utf-8", "replace")
    return ProcStat(comm, rest[0].decode("ascii", "replace"), cpu, max(threads, 0))


def read_stat(proc: str, pid: int) -> ProcStat | None:
    raw = read_small(f"{proc}/{pid}/stat")
    return None if raw is None else parse_stat(raw)


@dataclass(frozen=True, slots=True)
class ProcMemory:
    rss_bytes: int
    hugetlb_bytes: int


def parse_status_memory(raw: bytes) -> ProcMemory:
    """``VmRSS`` and ``HugetlbPages`` (kB) of ``/proc/<pid>/status``; 0 when absent (kernel threads)."""
    rss = huge = 0
    for line in raw.splitlines():
        if line.startswith(b"VmRSS:"):
            rss = _kb(line)
        elif line.startswith(b"HugetlbPages:"):
            huge = _kb(line)
    return ProcMemory(rss, huge)


def _kb(line: bytes) -> int:
    parts = line.split()
    try:
        return min(max(int(parts[1]), 0) * 1024, INT64_MAX)
    except (IndexError, ValueError):
        return 0


def read_memory(pid_dir: int) -> ProcMemory | None:
    """RSS and huge pages of the process whose ``/proc/<pid>`` is open as ``pid_dir``."""
    raw = read_at(pid_dir, "status")
    return None if raw is None else parse_status_memory(raw)


def read_exe(pid_dir: int) -> str:
    """Target of ``exe`` ("" when not readable: kernel thread, exited, no permission)."""
    try:
        return os.readlink("exe", dir_fd=pid_dir)
    except OSError:
        return ""


def count_running(pid_dir: int, max_threads: int) -> int | None:
    """Threads in state R (running or runnable), from each ``task/<tid>/stat``.

    ``None`` when the process has more than ``max_threads`` threads (reading them all every second would
    cost too much) or is gone.
    """
    task_dir = None
    try:
        task_dir = os.open("task", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pid_dir)
        tids = os.listdir(task_dir)
    except OSError:
        if task_dir is not None:
            os.close(task_dir)
        return None
    try:
        if len(tids) > max_threads:
            return None
        running = 0
        for tid in tids:
            raw = read_at(task_dir, f"{tid}/stat")
            if raw is None:
                continue  # the thread exited meanwhile
            rp = raw.rfind(b")")
            if rp >= 0 and raw[rp + 2 : rp + 3] == b"R":
                running += 1
        return running
    finally:
        os.close(task_dir)


def list_pids(path: str, limit_bytes: int = 4 << 20) -> list[int]:
    """The numbers in a ``cgroup.procs``/``tasks``-like file (empty when missing)."""
    raw = read_small(path, limit_bytes)
    if raw is None:
        return []
    out: list[int] = []
    for tok in raw.split():
        if tok.isdigit():
            out.append(int(tok))
    return out
