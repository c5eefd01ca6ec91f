"""Reading an aggregating source (eBPF) once per interval: one ``SyscallAggregate`` per stream to publish,
loss and counts into metrics and ``/healthz``.

The featurizer does not consume aggregates yet (docs/collector.md, "eBPF source: what is left").
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from minerlens_core.features import DEFAULT_CHEAP
from minerlens_core.schemas.aggregates import SyscallAggregate
from minerlens_core.syscalls import Arch, syscall_number

from minerlens_collector.agent.ebpf.messages import AggregateMessages, CommLookup, ImageLookup, PodLookup
from minerlens_collector.agent.metrics import CollectorMetrics


class _Aggregating(Protocol):
    missing: list[tuple[str, str]]
    refused_cgroups: int
    running: bool

    def set_streams(self, dirs: dict[tuple[str, str], str]) -> None: ...
    def read_window(self) -> Any: ...  # an ebpf.AggregateWindow


class AggregateReader:
    def __init__(
        self,
        source: object,
        metrics: CollectorMetrics,
        *,
        node: str,
        cluster: str,
        arch: Arch,
        pod_lookup: PodLookup | None = None,
        image_lookup: ImageLookup | None = None,
        comm: CommLookup | None = None,
    ) -> None:
        self.source: _Aggregating = source  # type: ignore[assignment]
        self.metrics = metrics
        cheap = getattr(source, "cheap", {n for n in (syscall_number(s, arch) for s in DEFAULT_CHEAP) if n is not None})
        self.messages = AggregateMessages(node, cluster, arch, cheap, pod_lookup, image_lookup, comm)
        self.windows = 0
        self.events = 0
        self.lost: dict[str, int] = {}
        self.last: dict[str, object] = {}
        self._next = time.monotonic()

    def set_streams(self, dirs: dict[tuple[str, str], str]) -> None:
        self.source.set_streams(dirs)

    def due(self, interval_s: float) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + interval_s
        return True

    def read(self) -> list[SyscallAggregate]:
        """Close the source's window: its messages (one per stream with calls or loss); none when it is not running."""
        if not self.source.running:
            return []
        win = self.source.read_window()
        self.windows += 1
        self.events += win.events
        self.metrics.aggregate_windows.inc()
        self.metrics.events_captured.inc(win.events)
        for reason, n in win.lost.items():
            if n:
                self.metrics.events_lost.labels(reason).inc(n)
                self.lost[reason] = self.lost.get(reason, 0) + n
        messages = self.messages.build(win)
        self.last = {"events": win.events, "sampled": win.sampled, "streams": len(messages)}
        return messages

    def health(self) -> dict[str, object]:
        return {
            "windows": self.windows,
            "events": self.events,
            "lost": dict(self.lost),
            "last_window": dict(self.last),
            "streams_without_v2_cgroup": len(self.source.missing),
            "cgroups_refused": self.source.refused_cgroups,
        }
