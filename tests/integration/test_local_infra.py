"""The local Kafka and Redis started by scripts/kafka.sh and scripts/redis.sh really work.

Skipped when a service is not running, failed instead when MINERLENS_REQUIRE_SERVICES=1
(see tests/integration/services.py).
"""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import unquote, urlsplit

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.integration.services import require_kafka, require_redis

N_MESSAGES = 100


@pytest.fixture
def kafka_servers() -> str:
    return require_kafka()


@pytest.fixture
def redis_service_url() -> str:
    return require_redis()


def _topic(prefix: str) -> str:
    return f"minerlens-it-{prefix}-{uuid.uuid4().hex[:12]}"


# ------------------------------------------------------------------------------------------ Kafka


@pytest.mark.kafka
async def test_kafka_produce_consume_in_order(kafka_servers: str) -> None:
    topic = _topic("order")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_servers, client_id="minerlens-it-admin")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()

    expected = [f"event-{i:03d}".encode() for i in range(N_MESSAGES)]
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_servers,
        acks="all",
        enable_idempotence=True,
        compression_type="zstd",
        linger_ms=5,
    )
    await producer.start()
    try:
        async with asyncio.timeout(60):
            futures = [await producer.send(topic, key=b"node-1", value=value) for value in expected]
            metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    assert [m.offset for m in metadata] == list(range(N_MESSAGES))
    assert {m.partition for m in metadata} == {0}

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_servers,
        group_id=f"{topic}-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received = []
    try:
        async with asyncio.timeout(60):
            while len(received) < N_MESSAGES:
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    received.extend(records)
            await consumer.commit()
    finally:
        await consumer.stop()

    assert [r.value for r in received] == expected
    assert [r.offset for r in received] == list(range(N_MESSAGES))
    assert {r.key for r in received} == {b"node-1"}


@pytest.mark.kafka
async def test_kafka_auto_creates_topics_with_broker_defaults(kafka_servers: str) -> None:
    topic = _topic("auto")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_servers, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        async with asyncio.timeout(60):
            meta = await producer.send_and_wait(topic, b"hello")
            partitions = await producer.partitions_for(topic)
    finally:
        await producer.stop()
    assert meta.offset == 0
    assert len(partitions) == 4  # num.partitions=4 in the generated server.properties


# ------------------------------------------------------------------------------------------ Redis


class RespError(Exception):
    """An error reply (``-ERR ...``) from Redis."""


async def _read_reply(reader: asyncio.StreamReader) -> object:
    line = await reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed by Redis")
    kind, payload = line[:1], line[1:-2]
    if kind == b"+":
        return payload.decode()
    if kind == b"-":
        raise RespError(payload.decode())
    if kind == b":":
        return int(payload)
    if kind == b"$":
        size = int(payload)
        return None if size < 0 else (await reader.readexactly(size + 2))[:-2]
    if kind == b"*":
        size = int(payload)
        return None if size < 0 else [await _read_reply(reader) for _ in range(size)]
    raise RespError(f"unexpected RESP reply {line!r}")


class RawRedis:
    """Just enough RESP2 for a SET/GET check, used when redis-py is not installed."""

    def __init__(self, url: str) -> None:
        self._url = urlsplit(url)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> RawRedis:
        host, port = self._url.hostname or "127.0.0.1", self._url.port or 6379
        self._reader, self._writer = await asyncio.open_connection(host, port)
        if self._url.password:
            user = unquote(self._url.username or "")
            password = unquote(self._url.password)
            await self.execute(*(("AUTH", user, password) if user else ("AUTH", password)))
        db = self._url.path.strip("/")
        if db:
            await self.execute("SELECT", db)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()

    async def execute(self, *args: str | bytes | int) -> object:
        if self._reader is None or self._writer is None:
            raise RuntimeError("RawRedis used outside 'async with'")
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self._writer.write(b"".join(out))
        await self._writer.drain()
        return await _read_reply(self._reader)


@pytest.mark.redis
async def test_redis_set_get(redis_service_url: str) -> None:
    key = f"minerlens:it:{uuid.uuid4().hex}"
    value = b"miner\r\n\x00\xffpool"  # binary-safe, contains RESP delimiters
    try:
        import redis.asyncio as redis_py
    except ImportError:
        redis_py = None

    async with asyncio.timeout(10):
        if redis_py is not None:
            client = redis_py.from_url(redis_service_url)
            try:
                assert await client.ping()
                assert await client.set(key, value, ex=60)
                assert await client.get(key) == value
                assert await client.delete(key) == 1
                assert await client.get(key) is None
            finally:
                await client.aclose()
        else:
            async with RawRedis(redis_service_url) as client:
                assert await client.execute("PING") == "PONG"
                assert await client.execute("SET", key, value, "EX", 60) == "OK"
                assert await client.execute("GET", key) == value
                assert await client.execute("DEL", key) == 1
                assert await client.execute("GET", key) is None
