"""Read the syscall topic back and summarise what arrived per pod (the demo's and operators' view)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from minerlens_core import topics
from minerlens_core.kafka import make_consumer
from minerlens_core.schemas import DropReport, ResourceSample, SyscallBatch, decode_syscall_stream
from minerlens_core.settings import KafkaSettings
from minerlens_core.syscalls import syscall_name
from pydantic import ValidationError


@dataclass
class PodView:
    pod: str
    node: str = ""
    batches: int = 0
    syscalls: int = 0
    lost: int = 0
    duplicates: int = 0
    gaps: int = 0
    last_seq: dict[str, int] = field(default_factory=dict)
    top: Counter[str] = field(default_factory=Counter)
    first_ns: int | None = None
    last_ns: int | None = None
    samples: int = 0
    cores: dict[str, float] = field(default_factory=dict)
    """CPU cores each container stream used between its last two resource samples"""
    last_cpu: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def cpu_cores(self) -> float | None:
        return sum(self.cores.values()) if self.cores else None


@dataclass
class StreamView:
    pods: dict[str, PodView] = field(default_factory=dict)
    node_drops: int = 0
    invalid: int = 0

    def add(self, msg: SyscallBatch | DropReport | ResourceSample) -> None:
        env = msg.envelope
        key = env.pod.display if env.pod else f"node/{env.node}"
        view = self.pods.setdefault(key, PodView(key, env.node))
        if isinstance(msg, ResourceSample):
            view.samples += 1
            stream, snap = f"{env.node}/{env.container_id}", msg.sample
            if snap.cpu_ns is not None:
                prev = view.last_cpu.get(stream)
                if prev is not None and snap.ts_ns > prev[0] and snap.cpu_ns >= prev[1]:
                    view.cores[stream] = (snap.cpu_ns - prev[1]) / (snap.ts_ns - prev[0])
                view.last_cpu[stream] = (snap.ts_ns, snap.cpu_ns)
            return
        if isinstance(msg, DropReport):
            view.lost += msg.lost_events
            if env.pod is None:
                self.node_drops += msg.lost_events
            return
        stream = f"{env.node}/{env.container_id}"
        last = view.last_seq.get(stream)
        if last is not None and msg.seq <= last:
            view.duplicates += 1
            return
        if last is not None and msg.seq != last + 1:
            view.gaps += 1
        view.last_seq[stream] = msg.seq
        view.batches += 1
        view.syscalls += len(msg.nr)
        view.top.update({syscall_name(k, msg.arch): v for k, v in Counter(msg.nr).items()})
        if msg.start_ns is not None:
            view.first_ns = msg.start_ns if view.first_ns is None else min(view.first_ns, msg.start_ns)
            view.last_ns = max(view.last_ns or 0, msg.end_ns or msg.start_ns)


async def watch_stream(
    kafka: KafkaSettings,
    *,
    seconds: float,
    topic: str = topics.SYSCALLS,
    from_beginning: bool = False,
    on_update: object = None,
) -> StreamView:
    """Consume ``topic`` for ``seconds`` (no consumer group: nothing is committed) and summarise it."""
    view = StreamView()
    consumer = make_consumer(kafka, topic, group_id=None, auto_offset_reset="earliest" if from_beginning else "latest")
    await consumer.start()
    try:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            records = await consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))
            for batch in records.values():
                for rec in batch:
                    try:
                        view.add(decode_syscall_stream(rec.value or b""))
                    except ValidationError:
                        view.invalid += 1
            if callable(on_update):
                on_update(view)
    finally:
        await consumer.stop()
    return view


def run_watch(kafka: KafkaSettings, seconds: float, from_beginning: bool) -> StreamView:
    return asyncio.run(watch_stream(kafka, seconds=seconds, from_beginning=from_beginning))
