"""``TracefsSource``: the collector's live kernel source (instance + reader + loss accounting)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from types import TracebackType

from minerlens_core.errors import CaptureError

from minerlens_collector.agent.tracefs.instance import TracefsInstance
from minerlens_collector.agent.tracefs.reader import CpuStats, TracefsReader
from minerlens_collector.agent.tracefs.tasks import KernelTaskTable
from minerlens_collector.events import RawEvents

log = logging.getLogger(__name__)
OFFSET_REFRESH_S = 1.0


class TracefsSource:
    """Captures ``raw_syscalls:sys_enter`` of chosen pids (and their descendants) in its own instance.

    >>> src = TracefsSource("minerlens")       # doctest: +SKIP
    >>> src.start(); src.add_pids([1234])       # doctest: +SKIP
    >>> ev = src.poll(0.1); lost = src.loss_delta()  # doctest: +SKIP
    """

    def __init__(
        self,
        name: str,
        buffer_kb: int = 8192,
        subbuf_kb: int | None = 64,
        clock: str = "mono",
        buffer_percent: int = 25,
        max_pages_per_poll: int | None = None,
    ) -> None:
        self.name = "tracefs"  # the source kind, as written into every batch
        self.instance = TracefsInstance(name, buffer_kb, subbuf_kb, clock, buffer_percent)
        self._tasks: KernelTaskTable | None = None
        self.max_pages_per_poll = max_pages_per_poll
        self._reader: TracefsReader | None = None
        self._offset = 0
        self._offset_at = 0.0
        self.total_events = 0
        self.total_lost = 0
        self.total_missed = 0

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Create and configure the instance, open the per-CPU pipes, turn tracing on."""
        if self._reader is not None:
            return
        inst = self.instance.open()
        try:
            assert inst.format is not None
            self._refresh_offset(force=True)
            self._reader = TracefsReader(inst.path, inst.cpus, inst.format, self._clock_offset)
            inst.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Turn tracing off, close the pipes and remove the instance (unread events are dropped)."""
        self.instance.stop()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self.instance.close()

    def __enter__(self) -> TracefsSource:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def reader(self) -> TracefsReader:
        if self._reader is None:
            msg = "TracefsSource is not started"
            raise CaptureError(msg)
        return self._reader

    # -- pids ------------------------------------------------------------------------------
    def set_pids(self, pids: Iterable[int], threads: bool = True) -> None:
        """Trace exactly ``pids`` (with all their threads; children follow via event-fork)."""
        self.instance.set_pids(pids, threads)

    def add_pids(self, pids: Iterable[int], threads: bool = True) -> None:
        """Also trace ``pids`` (with all their threads); those that already exited are skipped."""
        self.instance.add_pids(pids, threads)

    # -- data ------------------------------------------------------------------------------
    def _refresh_offset(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._offset_at > OFFSET_REFRESH_S:
            self._offset = self.instance.clock_offset_ns()
            self._offset_at = now

    def _clock_offset(self) -> int:
        self._refresh_offset()
        return self._offset

    def poll(self, timeout_s: float) -> RawEvents:
        """Wait up to ``timeout_s`` for data (less if a buffer passes ``buffer_percent``) and drain."""
        reader = self.reader
        reader.wait(timeout_s)
        return self.drain()

    def drain(self) -> RawEvents:
        """Read everything available now, without waiting."""
        reader = self.reader
        flagged = reader.missed_pages
        events = reader.read_available(self.max_pages_per_poll)
        self.total_events += len(events)
        if reader.missed_pages != flagged:
            self.total_missed += events.missed
            log.warning(
                "tracefs %s: %d sub-buffers flagged lost events (%d counted in their headers)",
                self.instance.name,
                reader.missed_pages - flagged,
                events.missed,
            )
        return events

    def task(self, tid: int) -> tuple[int, str] | None:
        """(tgid, comm) the kernel recorded for a traced thread, also after it exited."""
        if self._tasks is None:
            self._tasks = KernelTaskTable(self.instance.path.parent.parent)
        return self._tasks.lookup(tid)

    def loss_delta(self) -> dict[int, int]:
        """Per-CPU events lost (overrun + commit overrun + dropped) since the previous call."""
        delta = self.reader.overruns_delta()
        lost = sum(delta.values())
        if lost:
            self.total_lost += lost
            log.warning("tracefs %s lost %d events (per CPU: %s)", self.instance.name, lost, delta)
        return delta

    def stats(self) -> dict[int, CpuStats]:
        return self.reader.stats()
