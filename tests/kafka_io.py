"""Reading a topic back in tests, against the real broker: one helper instead of a copy per test module."""

from __future__ import annotations

import time
from typing import Any

from minerlens_core.kafka import make_consumer
from minerlens_core.settings import KafkaSettings


async def read_records(kafka: KafkaSettings, topic: str, expect: int, timeout_s: float = 30) -> list[Any]:
    """The records of ``topic`` from its start (no group), once ``expect`` arrived or after ``timeout_s``."""
    consumer = make_consumer(kafka, topic, group_id=None)
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(out) < expect and time.monotonic() < deadline:
            got = await consumer.getmany(timeout_ms=300)
            out += [r for recs in got.values() for r in recs]
    finally:
        await consumer.stop()
    return out
