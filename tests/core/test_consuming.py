"""The one consumer loop (minerlens_core.consuming) on the real broker, each test its own topic and group:

* a record that does not decode goes to ``<topic>.dlq`` with its reason and origin, the others are handled,
  the poll is committed after the handler returned;
* a handler that finds its dependency away (``Unavailable``) or hits a bug: nothing is committed, the poll
  is read again after the backoff until it succeeds; what the handler marked done is committed at once;
* ``stop`` ends the loop while Kafka is unreachable, and abandons a stuck poll after the grace.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from minerlens_core.consuming import ConsumerLoop, LoopHooks, Poll, Unavailable, Undecodable
from minerlens_core.kafka import ConsumerProgress, make_producer
from minerlens_core.retrying import Backoff
from minerlens_core.settings import KafkaSettings
from minerlens_core.topics import dead_letter

from tests.integration.services import require_kafka
from tests.kafka_io import read_records

pytestmark = pytest.mark.kafka

FAST = Backoff(initial_s=0.05, max_s=0.2)


def _unique(name: str) -> str:
    return f"test.{name}.{uuid.uuid4().hex[:10]}"


async def _produce(kafka: KafkaSettings, topic: str, values: list[bytes]) -> None:
    producer = make_producer(kafka)
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(topic, v, key=b"k", partition=0)
    finally:
        await producer.stop()


async def _read(kafka: KafkaSettings, topic: str, expect: int, timeout_s: float = 20) -> list[Any]:
    return await read_records(kafka, topic, expect, timeout_s)


async def _committed(kafka: KafkaSettings, group: str, topic: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(TopicPartition(topic, 0))
        return offset
    finally:
        await consumer.stop()


def _number(record: Any) -> int:
    if record.value == b"boom":
        raise Undecodable("a bomb", KeyError("boom"))
    return int(record.value)


def _loop(
    kafka: KafkaSettings, topic: str, handle: Callable[[Poll[int]], Any], **kw: Any
) -> tuple[ConsumerLoop[int], str]:
    group = _unique("group")
    progress = ConsumerProgress("test consumer", stall_after_s=60)
    loop = ConsumerLoop(
        kafka, [topic], group_id=group, decode=_number, handle=handle, progress=progress, poll_timeout_ms=100,
        undecodable="not a number", retry_backoff=FAST, **kw,
    )  # fmt: skip
    return loop, group


async def _run_until(loop: ConsumerLoop[Any], done: Callable[[], bool], timeout_s: float = 30) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        deadline = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline, "condition not reached in time"
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_undecodable_records_are_dead_lettered_the_rest_handled_and_committed() -> None:
    kafka = KafkaSettings(bootstrap=require_kafka())
    topic = _unique("numbers")
    await _produce(kafka, topic, [b"1", b"x", b"3", b"boom", b"5"])
    handled: list[int] = []
    letters: list[tuple[int, str]] = []

    async def handle(poll: Poll[int]) -> None:
        handled.extend(value for _, value in poll.items)

    hooks = LoopHooks(dead_lettered=lambda record, reason, _: letters.append((record.offset, reason)))
    loop, group = _loop(kafka, topic, handle, hooks=hooks)
    await _run_until(loop, lambda: loop.committed >= 5)

    assert handled == [1, 3, 5]
    assert letters == [(1, "not a number"), (3, "a bomb")]
    assert loop.dead_lettered == 2
    assert await _committed(kafka, group, topic) == 5
    dlq = await _read(kafka, dead_letter(topic), 2)
    headers = [dict(r.headers) for r in dlq]
    assert [h["error.reason"] for h in headers] == [b"not a number", b"a bomb"]
    assert [h["source.offset"] for h in headers] == [b"1", b"3"]
    assert all(h["source.topic"] == topic.encode() and h["source.partition"] == b"0" for h in headers)
    assert [h["error.class"] for h in headers] == [b"ValueError", b"KeyError"]
    assert [r.value for r in dlq] == [b"x", b"boom"]
    health = loop.progress.health()
    assert health["ok"] is True, health
    assert health["processed"] == 5
    assert loop.progress.stopping, "the loop ended as asked"


@pytest.mark.parametrize("failure", ["dependency", "bug"])
async def test_a_failing_handler_is_rewound_and_the_poll_read_again(failure: str) -> None:
    kafka = KafkaSettings(bootstrap=require_kafka())
    topic = _unique("numbers")
    await _produce(kafka, topic, [b"1", b"2", b"3"])
    calls: list[list[int]] = []
    while_failing: list[tuple[int | None, str | None]] = []
    failures: list[BaseException] = []

    async def handle(poll: Poll[int]) -> None:
        calls.append([value for _, value in poll.items])
        if len(calls) > 1:  # what the broker and the progress say while the poll is being retried
            while_failing.append((await _committed(kafka, group, topic), loop.progress.waiting))
        if len(calls) <= 2:
            if failure == "dependency":
                raise Unavailable("Redis", "connection refused")
            raise ZeroDivisionError("simulated bug")

    loop, group = _loop(kafka, topic, handle, hooks=LoopHooks(poll_failed=failures.append))
    await _run_until(loop, lambda: loop.committed >= 3)

    assert [v for call in calls for v in call] == [1, 2, 3] * 3, "the same records, read again until handled"
    waiting = "Redis" if failure == "dependency" else None
    assert while_failing == [(None, waiting), (None, waiting)], "nothing committed before the handler succeeded"
    assert await _committed(kafka, group, topic) == 3
    assert len(failures) == 2
    assert loop.progress.waiting is None
    assert loop.progress.health()["ok"] is True


async def test_what_the_handler_finished_is_committed_when_the_poll_fails() -> None:
    kafka = KafkaSettings(bootstrap=require_kafka())
    topic = _unique("numbers")
    await _produce(kafka, topic, [b"1", b"2", b"3", b"4", b"5"])
    seen: list[int] = []
    failed = False

    async def handle(poll: Poll[int]) -> None:
        nonlocal failed
        for record, value in poll.items:
            seen.append(value)
            if value == 3 and not failed:
                failed = True
                committed_before.append(await _committed(kafka, group, topic))
                raise Unavailable("the SIEM")
            poll.done(record)

    committed_before: list[int | None] = []
    loop, group = _loop(kafka, topic, handle)
    await _run_until(loop, lambda: loop.committed >= 5)

    assert [seen.count(v) for v in (1, 2, 3)] == [1, 1, 2], seen
    assert sorted(set(seen)) == [1, 2, 3, 4, 5]
    assert committed_before == [None]
    assert await _committed(kafka, group, topic) == 5


async def test_stop_ends_the_loop_while_kafka_is_unreachable() -> None:
    progress = ConsumerProgress("test consumer")
    failures: list[BaseException] = []

    async def handle(poll: Poll[int]) -> None:
        raise AssertionError("never connected")

    loop = ConsumerLoop(
        KafkaSettings(bootstrap="127.0.0.1:1"), ["never"], group_id="never", decode=_number, handle=handle,
        progress=progress, connect_backoff=FAST, hooks=LoopHooks(connect_failed=failures.append),
    )  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    deadline = time.monotonic() + 20
    while len(failures) < 2:
        assert time.monotonic() < deadline
        assert not task.done()
        await asyncio.sleep(0.05)
    assert progress.waiting == "Kafka"
    assert not loop.consuming
    t0 = time.monotonic()
    stop.set()
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - t0 < 2
    assert progress.health()["ok"] is True


async def test_stop_abandons_a_stuck_poll_after_the_grace() -> None:
    kafka = KafkaSettings(bootstrap=require_kafka())
    topic = _unique("numbers")
    await _produce(kafka, topic, [b"1"])
    entered = asyncio.Event()

    async def handle(poll: Poll[int]) -> None:  # a dependency that never answers
        entered.set()
        await asyncio.Event().wait()

    loop, group = _loop(kafka, topic, handle, grace_s=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    await asyncio.wait_for(entered.wait(), 30)
    t0 = time.monotonic()
    stop.set()
    await asyncio.wait_for(task, 5)
    took = time.monotonic() - t0
    assert 0.4 < took < 3, took
    assert loop.committed == 0
    assert await _committed(kafka, group, topic) is None, "abandoned: read again by the next consumer"
