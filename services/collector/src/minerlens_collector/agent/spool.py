"""Bounded local buffer of encoded messages waiting for Kafka. Full: the oldest is dropped and counted."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Outgoing:
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    events: int
    pod_uid: str | None
    kind: str = ""
    """the message kind (``batch``, ``drop_report``, ``resource_sample``), for accounting"""


class Spool:
    """FIFO bounded by bytes. ``put`` never blocks the capture path: it evicts the oldest instead."""

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._items: deque[Outgoing] = deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self.dropped_messages = 0
        self.dropped_events = 0

    def put(self, item: Outgoing) -> list[Outgoing]:
        """Queue ``item``; returns what was evicted to make room (already counted)."""
        evicted: list[Outgoing] = []
        self._items.append(item)
        self._bytes += len(item.value)
        while self._bytes > self._max and len(self._items) > 1:
            old = self._items.popleft()
            self._bytes -= len(old.value)
            evicted.append(old)
        self.dropped_messages += len(evicted)
        self.dropped_events += sum(e.events for e in evicted)
        self._ready.set()
        self._empty.clear()
        return evicted

    def peek(self, n: int) -> list[Outgoing]:
        return [self._items[i] for i in range(min(n, len(self._items)))]

    def pop(self, item: Outgoing) -> None:
        """Remove ``item`` if it is still at the head (it may have been evicted meanwhile)."""
        if self._items and self._items[0] is item:
            self._items.popleft()
            self._bytes -= len(item.value)
        if not self._items:
            self._ready.clear()
            self._empty.set()

    async def wait(self) -> None:
        await self._ready.wait()

    async def wait_empty(self) -> None:
        await self._empty.wait()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes
