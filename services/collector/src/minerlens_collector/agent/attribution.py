"""Which pod a thread belongs to: ``/proc/<tid>`` cgroup, tgid and comm, cached with a TTL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from minerlens_collector.cgroups import PodCgroup, parse_proc_cgroup


@dataclass(frozen=True, slots=True)
class TaskIdentity:
    tid: int
    pid: int
    comm: str
    pod: PodCgroup | None
    seen_live: bool = True
    """False when the thread had exited before ``/proc/<tid>`` was read."""


def read_task(tid: int, proc: Path = Path("/proc")) -> TaskIdentity | None:
    """Identity of a live thread, ``None`` when it has already exited."""
    base = proc / str(tid)
    try:
        cgroup = (base / "cgroup").read_text()
        status = (base / "status").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    pid, comm = tid, ""
    for line in status.split("\n"):  # not splitlines(): a command name may hold U+2028 or U+0085
        if line.startswith("Tgid:"):
            pid = int(line.split()[1])
        elif line.startswith("Name:"):
            comm = line.split(":", 1)[1].strip()
    return TaskIdentity(tid, pid, comm, parse_proc_cgroup(cgroup))


class TaskResolver:
    """Maps thread ids to pods. Entries expire after ``ttl_s`` because tids are reused.

    A thread that exits before it is resolved keeps its process and name from ``exited`` (the
    tracer's own task table) and its pod from ``hints`` (tid -> pod learnt when the pod's cgroup was
    scanned); failing that it is *unattributed* and counted, never guessed. ``pid`` is -1 when unknown.
    """

    def __init__(
        self,
        proc: Path = Path("/proc"),
        ttl_s: float = 30.0,
        max_entries: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
        exited: Callable[[int], tuple[int, str] | None] | None = None,
    ) -> None:
        self._proc = proc
        self._ttl = ttl_s
        self._max = max_entries
        self._clock = clock
        self._exited = exited
        self._cache: dict[int, tuple[float, TaskIdentity]] = {}
        self.hints: dict[int, PodCgroup] = {}
        self.lookups = 0
        self.misses = 0

    def forget(self, tids: Iterable[int]) -> None:
        """Drop cached identities (their threads called ``execve``: the command name changed)."""
        for tid in tids:
            self._cache.pop(tid, None)

    def resolve(self, tid: int) -> TaskIdentity:
        now = self._clock()
        hit = self._cache.get(tid)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        self.lookups += 1
        found = read_task(tid, self._proc)
        if found is None:
            self.misses += 1
            known = self._exited(tid) if self._exited else None
            pid, comm = known if known else (-1, "")
            found = TaskIdentity(tid, pid, comm, self.hints.get(tid), seen_live=False)
        elif found.pod is None and tid in self.hints:
            # /proc shows this tid outside every pod although the pod's scan saw it inside: the thread
            # exited and its tid was reused (or it moved out). The live task's name is not the traced
            # one's: prefer what the tracer recorded for the tid when it made its syscalls.
            known = self._exited(tid) if self._exited else None
            pid, comm = known if known else (found.pid, found.comm)
            found = TaskIdentity(tid, pid, comm, self.hints[tid])
        if len(self._cache) >= self._max:
            self._evict(now)
        self._cache[tid] = (now, found)
        return found

    def _evict(self, now: float) -> None:
        fresh = {k: v for k, v in self._cache.items() if now - v[0] < self._ttl}
        if len(fresh) >= self._max:
            fresh = dict(list(fresh.items())[self._max // 2 :])
        self._cache = fresh
