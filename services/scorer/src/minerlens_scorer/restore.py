"""Read a findings topic back: the latest finding of every pod (what a restarted scorer rebuilds from).

Used on the scorer's state topic (or the alerts topic: same format). Both are keyed by pod uid, so a pod's
findings are in one partition, in order. Deployments should make the state topic ``cleanup.policy=compact``
so this read stays short; it is correct either way.
"""

from __future__ import annotations

import asyncio
import logging
import time

from minerlens_core.kafka import make_consumer
from minerlens_core.schemas.details import MinerlensDetails
from minerlens_core.schemas.ocsf import DetectionFinding, decode_finding
from minerlens_core.settings import KafkaSettings
from pydantic import ValidationError

log = logging.getLogger(__name__)


def _pod_uid(f: DetectionFinding) -> str | None:
    try:
        uid = MinerlensDetails.of(f).pod_uid
    except ValidationError:
        uid = None
    if uid:
        return uid
    pod = f.pod
    return pod.uid if pod else None


async def latest_findings(kafka: KafkaSettings, topic: str, timeout_s: float = 30.0) -> list[DetectionFinding]:
    """The last decodable finding per pod uid in ``topic`` up to its current end (empty if it does not exist)."""
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            return []
        consumer.subscribe([topic])  # without a group: every partition, once the metadata is in
        deadline = time.monotonic() + timeout_s
        while not consumer.assignment():
            if time.monotonic() > deadline:
                msg = f"no partition metadata for {topic} within {timeout_s:.0f} s"
                raise TimeoutError(msg)
            await consumer.getmany(timeout_ms=100)
        tps = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        end = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        latest: dict[str, DetectionFinding] = {}
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            if time.monotonic() > deadline:
                msg = f"reading {topic} back took more than {timeout_s:.0f} s"
                raise TimeoutError(msg)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
            if not remaining:
                break
            got = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, records in got.items():
                for r in records:
                    if r.offset >= end[tp]:
                        continue
                    try:
                        finding = decode_finding(r.value or b"")
                    except (ValidationError, ValueError) as exc:
                        log.warning("%s@%d: not a finding, ignored: %s", tp, r.offset, str(exc)[:200])
                        continue
                    uid = _pod_uid(finding)
                    if uid:
                        latest[uid] = finding
            await asyncio.sleep(0)
        return list(latest.values())
    finally:
        await consumer.stop()
