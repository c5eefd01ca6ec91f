"""Tag the fd argument of I/O syscalls with what the fd is (``SyscallBatch.fd_kind``).

Per process a map fd -> ``FdKind``: replaced by the resource sampler every interval (it reads every fd
of the busiest processes anyway); an fd not in the map is resolved once by ``readlink`` when an event
needs it and cached until the next replacement. A ``close(fd)`` seen in the events invalidates that
fd: the process's later calls on that number are resolved afresh (the number is reused by the next
``open``/``socket``/``accept``), and its earlier calls in the same chunk keep the cached kind, or are
``UNKNOWN`` when there was none (what the number refers to now is a later object: a guess could be
wrong). What cannot be resolved is 0 (``UNKNOWN``): the fd was closed, or the process exited, before
the events were read; or the lookup budget of the call was spent. A tag is never a guess.

Cost bound: a pod can make I/O calls on millions of distinct bogus fd numbers; at most
``max_lookups`` readlinks happen per ``tag`` call and at most ``max_fds_per_process`` numbers are
cached per process; the rest are ``UNKNOWN`` and counted in ``unresolved``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt
from minerlens_core.schemas.resources import FdKind
from minerlens_core.syscalls import Arch, syscall_number
from minerlens_core.syscalls.io import FD_DATA_SYSCALLS

from minerlens_collector.agent.fds import MAX_FDS, NetInodes, fd_kind

I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]
_FD_LIMIT = 1 << 31
_PID_SHIFT = 31


def _numbers(names: Iterable[str], arch: Arch) -> list[int]:
    return sorted(n for name in names if (n := syscall_number(name, arch)) is not None)


class FdTable:
    """fd -> kind per process, for tagging events. Not thread-safe: use it from one thread."""

    def __init__(
        self,
        arch: Arch,
        proc: str = "/proc",
        *,
        max_lookups: int = 1024,
        max_fds_per_process: int = MAX_FDS,
        max_processes: int = 65_536,
    ) -> None:
        self._proc = proc
        self._maps: dict[int, dict[int, int]] = {}
        self._max_lookups = max_lookups
        self._max_fds = max_fds_per_process
        self._max_processes = max_processes
        data = _numbers(FD_DATA_SYSCALLS, arch)
        self._lut = np.zeros(max(data, default=0) + 2, dtype=bool)
        self._lut[data] = True
        self._close = syscall_number("close", arch)
        self._net = NetInodes(proc)
        self.lookups = 0
        """readlinks done for events (misses of the maps)"""
        self.unresolved = 0
        """I/O events left UNKNOWN because the lookup budget was spent"""
        self.closed_unknown = 0
        """I/O events left UNKNOWN because their fd was closed before it could be resolved"""

    # -- maps ------------------------------------------------------------------------------------
    def replace(self, maps: Mapping[int, Mapping[int, int]]) -> None:
        """New fd maps of these processes (read by the sampler)."""
        for pid, kinds in maps.items():
            self._maps[pid] = dict(kinds)

    def retain(self, pids: Iterable[int]) -> None:
        """Forget every process not in ``pids`` (exited, or left the traced pods)."""
        keep = set(pids)
        self._maps = {p: m for p, m in self._maps.items() if p in keep}
        self._net.new_round()

    def __len__(self) -> int:
        return len(self._maps)

    def _lookup(self, pid: int, fd: int, budget: list[int], cached_only: bool = False) -> int:
        m = self._maps.get(pid)
        if m is not None:
            kind = m.get(fd)
            if kind is not None:
                return kind
        if cached_only:
            return -2
        if budget[0] <= 0:
            return -1
        budget[0] -= 1
        self.lookups += 1
        kind = int(fd_kind(self._proc, pid, fd, self._net))
        if m is None:
            if len(self._maps) >= self._max_processes:
                return kind
            m = self._maps[pid] = {}
        if kind != FdKind.UNKNOWN and len(m) < self._max_fds:
            m[fd] = kind
        return kind

    # -- tagging ---------------------------------------------------------------------------------
    def is_data(self, nr: I64) -> npt.NDArray[np.bool_]:
        """Which events are ``FD_DATA_SYSCALLS``."""
        lut = self._lut
        return lut[np.clip(nr, 0, len(lut) - 1)] & (nr >= 0) & (nr < len(lut) - 1)

    def tag(self, pid: I64, nr: I64, arg0: I64) -> I8:
        """``FdKind`` per event (0 for calls that take no fd, and for fds that cannot be resolved).

        ``pid``: the process of each event (<= 0 when unknown); events in time order.
        """
        n = int(nr.shape[0])
        out = np.zeros(n, np.int8)
        if n == 0:
            return out
        data = self.is_data(nr)
        close = (nr == self._close) if self._close is not None else np.zeros(n, dtype=bool)
        valid = (arg0 >= 0) & (arg0 < _FD_LIMIT) & (pid > 0) & (pid < _FD_LIMIT)
        sel = np.flatnonzero((data | close) & valid)
        if sel.shape[0] == 0:
            return out
        key = (pid[sel].astype(np.int64) << _PID_SHIFT) | arg0[sel]
        is_close = close[sel]
        budget = [self._max_lookups]
        if not is_close.any():
            uniq, inv = np.unique(key, return_inverse=True)
            kinds = np.array([self._lookup(k >> _PID_SHIFT, k & (_FD_LIMIT - 1), budget) for k in uniq.tolist()])
            out[sel] = self._finish(kinds[inv])
            return out
        # calls after a close(fd) of the same process in this chunk see whatever the fd is now
        order = np.lexsort((np.arange(sel.shape[0]), key))
        k_sorted, c_sorted = key[order], is_close[order].astype(np.int64)
        starts = np.flatnonzero(np.r_[True, k_sorted[1:] != k_sorted[:-1]])
        group = np.repeat(np.arange(starts.shape[0]), np.diff(np.r_[starts, k_sorted.shape[0]]))
        cum = np.cumsum(c_sorted)
        before = cum - c_sorted - (cum[starts] - c_sorted[starts])[group]
        after_close = np.empty(sel.shape[0], dtype=bool)
        after_close[order] = before > 0
        key2 = key * 2 + after_close
        closed_keys = set(np.unique(key[is_close]).tolist())
        want = ~is_close  # closes themselves carry no kind
        uniq, inv = np.unique(key2[want], return_inverse=True)
        kinds_l: list[int] = []
        refreshed: set[int] = set()
        for k2 in uniq.tolist():  # ascending: a key's pre-close lookup comes before its post-close one
            k, fresh = k2 >> 1, k2 & 1
            pid_, fd = k >> _PID_SHIFT, k & (_FD_LIMIT - 1)
            if fresh:
                m = self._maps.get(pid_)
                if m is not None:
                    m.pop(fd, None)
                refreshed.add(k)
            kinds_l.append(self._lookup(pid_, fd, budget, cached_only=not fresh and k in closed_keys))
        for k in closed_keys - refreshed:  # closed and not used again here: unknown until looked up again
            m = self._maps.get(k >> _PID_SHIFT)
            if m is not None:
                m.pop(k & (_FD_LIMIT - 1), None)
        tagged = np.zeros(sel.shape[0], np.int8)
        tagged[want] = self._finish(np.array(kinds_l, dtype=np.int64)[inv])
        out[sel] = tagged
        return out

    def _finish(self, kinds: I64) -> I8:
        missing = kinds < 0
        if missing.any():
            self.unresolved += int((kinds == -1).sum())
            self.closed_unknown += int((kinds == -2).sum())
            kinds = np.where(missing, 0, kinds)
        return kinds.astype(np.int8)
