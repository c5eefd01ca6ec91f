"""Non-blocking drain of every CPU's ``trace_pipe_raw`` plus the per-CPU loss counters.

Kernel behaviour relied on (6.18): one read() returns exactly one sub-buffer, also a partly filled
one (the kernel copies the committed events out of the writer's sub-buffer, possibly ending with the
padding record that closed it, and zero-fills the rest); EAGAIN means empty; a read may also return
0 bytes while a writer is mid-commit (treated as empty for this round). The file has a plain
``.read``, so one readv() with K page-sized iovecs does up to K page reads in a single syscall.
A partial page means the reader caught up with the writer: that CPU is left until the next drain
instead of chasing the writer with near-empty page reads.
"""

from __future__ import annotations

import errno
import os
import select
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from minerlens_core.errors import CaptureError

from minerlens_collector.agent.tracefs.format import SysEnterFormat
from minerlens_collector.agent.tracefs.ringbuffer import COMMIT_MASK, DecodedPages, decode_pages
from minerlens_collector.events import RawEvents

IOV_PAGES = 16  # pages per readv() call
CHUNK_BYTES = 4 << 20  # decode in batches of about this many bytes


@dataclass(frozen=True, slots=True)
class CpuStats:
    """Counters of ``per_cpu/cpuN/stats`` (cumulative since the instance was created)."""

    entries: int = 0
    overrun: int = 0  # overwritten before being read (overwrite mode)
    commit_overrun: int = 0  # lost because nested writes filled the buffer
    dropped_events: int = 0  # refused because the buffer was full (no-overwrite mode)
    read_events: int = 0

    @property
    def lost(self) -> int:
        return self.overrun + self.commit_overrun + self.dropped_events


def parse_stats(text: str) -> CpuStats:
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if sep and rest.strip().isdigit():
            values[key.strip().replace(" ", "_")] = int(rest)
    names = ("entries", "overrun", "commit_overrun", "dropped_events", "read_events")
    return CpuStats(**{k: values.get(k, 0) for k in names})


class TracefsReader:
    """Reads ``per_cpu/cpuN/trace_pipe_raw`` of one instance; :meth:`close` before removing it."""

    def __init__(
        self,
        instance_path: Path,
        cpus: list[int],
        fmt: SysEnterFormat,
        clock_offset: Callable[[], int],
        iov_pages: int = IOV_PAGES,
    ) -> None:
        self.fmt = fmt
        self._clock_offset = clock_offset
        self._path = instance_path
        self._page = fmt.header.page_size
        self._iov_pages = max(1, iov_pages)
        per_chunk = max(self._iov_pages, CHUNK_BYTES // self._page)
        self._buf = bytearray(per_chunk * self._page)
        self._views = [memoryview(self._buf)[i * self._page : (i + 1) * self._page] for i in range(per_chunk)]
        # a sub-buffer the writer left holds at least this much (the rest is < one record + extend)
        self._full_bytes = fmt.header.data_size - 2 * max(fmt.stride, 64)
        self._fds: dict[int, int] = {}
        self.pages_read = 0  # sub-buffers read so far
        self.missed_pages = 0  # of which flagged RB_MISSED_EVENTS
        self.slow_pages = 0  # of which (partly) decoded by the Python walk
        self.decode_seconds = 0.0  # wall time spent decoding
        self._last_lost: dict[int, int] = {}
        error: OSError | None = None
        for cpu in cpus:
            try:
                path = instance_path / "per_cpu" / f"cpu{cpu}" / "trace_pipe_raw"
                self._fds[cpu] = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            except OSError as exc:  # an offline CPU has no buffer (ENODEV)
                error = exc
        if not self._fds:
            msg = f"cannot open {instance_path}/per_cpu/*/trace_pipe_raw: {error}"
            raise CaptureError(msg) from error
        self._poll = select.poll()
        for fd in self._fds.values():
            self._poll.register(fd, select.POLLIN)
        self._last_lost = self.overruns()

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def wait(self, timeout_s: float) -> bool:
        """Sleep until a CPU buffer reaches the instance's ``buffer_percent`` or ``timeout_s`` passes."""
        try:
            return bool(self._poll.poll(max(0, int(timeout_s * 1000))))
        except InterruptedError:
            return False

    def _read_pages(self, fd: int, first: int, count: int) -> int:
        """Read up to ``count`` pages into slots ``first..``; returns the pages read (0 = empty)."""
        while True:
            try:
                n = os.readv(fd, self._views[first : first + count])
                break
            except InterruptedError:
                continue
            except BlockingIOError:
                return 0
            except OSError as exc:
                if exc.errno in (errno.ENODEV, errno.EBADF):  # cpu went away
                    return 0
                raise
        return n // self._page

    def _partial(self, slot: int) -> bool:
        """Whether the page in ``slot`` was copied out of the writer's sub-buffer (not full)."""
        h = self.fmt.header
        commit = int.from_bytes(self._views[slot][h.commit_offset : h.commit_offset + 4], "little")
        return (commit & COMMIT_MASK) < self._full_bytes

    def read_available(self, max_pages: int | None = None) -> RawEvents:
        """Drain what the CPU buffers hold now (at most ``max_pages`` sub-buffers in total)."""
        budget = max_pages if max_pages is not None else 1 << 62
        active = list(self._fds.values())
        parts: list[DecodedPages] = []
        slots = len(self._views)
        used = 0
        while active and budget > 0:
            still = []
            for fd in active:
                want = min(self._iov_pages, budget, slots - used)
                got = self._read_pages(fd, used, want)
                used += got
                budget -= got
                if got == want and not self._partial(used - 1):
                    still.append(fd)  # more may be waiting; a partial page means we caught the writer
                if used == slots:
                    parts.append(self._decode(used))
                    used = 0
                if budget <= 0:
                    break
            active = still
        if used:
            parts.append(self._decode(used))
        return self._merge(parts)

    def _decode(self, pages: int) -> DecodedPages:
        t0 = time.perf_counter()
        out = decode_pages(self._buf, self.fmt, pages)
        self.decode_seconds += time.perf_counter() - t0
        return out

    def _merge(self, parts: list[DecodedPages]) -> RawEvents:
        if not parts:
            return RawEvents.empty()
        ts = np.concatenate([p.ts for p in parts]) if len(parts) > 1 else parts[0].ts
        tid = np.concatenate([p.tid for p in parts]) if len(parts) > 1 else parts[0].tid
        nr = np.concatenate([p.nr for p in parts]) if len(parts) > 1 else parts[0].nr
        arg0 = None
        if all(p.arg0 is not None for p in parts):
            arg0 = np.concatenate([p.arg0 for p in parts if p.arg0 is not None]) if len(parts) > 1 else parts[0].arg0
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        ts += self._clock_offset()
        self.pages_read += sum(p.pages for p in parts)
        self.missed_pages += sum(p.missed_pages for p in parts)
        self.slow_pages += sum(p.slow_pages for p in parts)
        return RawEvents(
            ts_ns=ts,
            tid=tid[order],
            nr=nr[order],
            missed=sum(p.missed for p in parts),
            arg0=None if arg0 is None else arg0[order],
        )

    # -- loss ------------------------------------------------------------------------------
    def stats(self) -> dict[int, CpuStats]:
        out = {}
        for cpu in self._fds:
            try:
                out[cpu] = parse_stats((self._path / "per_cpu" / f"cpu{cpu}" / "stats").read_text())
            except OSError:
                continue
        return out

    def overruns(self) -> dict[int, int]:
        """Cumulative lost events per CPU (overrun + commit overrun + dropped events)."""
        return {cpu: s.lost for cpu, s in self.stats().items()}

    def overruns_delta(self) -> dict[int, int]:
        """Lost events per CPU since the previous call (or since the reader was opened)."""
        now = self.overruns()
        delta = {cpu: lost - self._last_lost.get(cpu, 0) for cpu, lost in now.items()}
        self._last_lost = now
        return delta
