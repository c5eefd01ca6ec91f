"""An idle Kafka consumer: ``python -m minerlens_lab.benign.kafka_consumer --bootstrap H:P --topic T
--group G --log F``.

Joins a consumer group (aiokafka), long-polls the broker (fetch requests held up to ``fetch_max_wait``
by the broker, heartbeats to the group coordinator) and, for each record of the rarely written topic,
appends ``"<seconds> <records>"`` to the log: the quiet event-driven service that waits all day on one
broker connection.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path


async def _consume(args: argparse.Namespace) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        client_id=f"{args.group}-consumer",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=500,
        heartbeat_interval_ms=3000,
        session_timeout_ms=30000,
    )
    await consumer.start()
    t0, seen = time.monotonic(), 0
    try:
        async for _record in consumer:
            seen += 1
            with args.log.open("a") as f:
                f.write(f"{time.monotonic() - t0:.1f} {seen}\n")
    finally:
        await consumer.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--log", type=Path, required=True)
    args = ap.parse_args(argv)
    asyncio.run(_consume(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
