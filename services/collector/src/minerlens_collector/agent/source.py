"""The capture-source contract and the automatic choice between tracefs and strace."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Literal, Protocol

from minerlens_collector.events import RawEvents

log = logging.getLogger(__name__)


class EventSource(Protocol):
    """A live syscall source scoped to a set of tasks (it follows their forks)."""

    name: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def add_pids(self, pids: Iterable[int]) -> None: ...
    def poll(self, timeout_s: float) -> RawEvents: ...
    def loss_delta(self) -> dict[int, int]: ...


def open_source(kind: Literal["auto", "tracefs", "strace"], *, instance: str, buffer_kb: int) -> EventSource:
    """The requested source; ``auto`` prefers tracefs and says so when it must fall back to strace."""
    from minerlens_collector.agent.tracefs import TracefsSource, is_available

    if kind == "tracefs" or (kind == "auto" and is_available()):
        return TracefsSource(instance, buffer_kb=buffer_kb)
    from minerlens_collector.agent.strace_source import StraceSource

    if kind == "auto":
        log.warning(
            "tracefs is not usable here (not mounted, or no permission): falling back to strace. "
            "strace is 10-100x slower and slows the traced programs; mount tracefs for production use."
        )
    return StraceSource()
