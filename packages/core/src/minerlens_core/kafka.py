"""aiokafka factories, message headers and the consumer mechanics every service shares (``kafka`` extra).

Every consumer of the pipeline follows the same rules, implemented once here (and run by the one
consumer loop, ``minerlens_core.consuming.ConsumerLoop``):

* a message it cannot process goes to ``<topic>.dlq`` (``dead_letter_of`` / ``send_dead_letter``) with
  the reason in ``error.*`` headers and its origin in ``source.*`` headers, and is then acknowledged;
* a batch that fails is processed again in parts (``split_failures``) so that one bad item costs only
  itself, never its batch, partition or worker;
* the loop reports what it does to a ``ConsumerProgress``, which answers ``/healthz`` truthfully: not
  ok when the loop's task died or input waits and nothing was processed for a while.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import BaseModel

from minerlens_core.schemas.envelope import SCHEMA_VERSION
from minerlens_core.settings import KafkaSettings
from minerlens_core.topics import dead_letter

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]


def message_headers(message: BaseModel) -> Headers:
    """Headers every minerlens message carries, so consumers can route without decoding the body."""
    kind = getattr(message, "kind", type(message).__name__)
    return [
        ("minerlens.kind", str(kind).encode()),
        ("minerlens.schema_version", str(SCHEMA_VERSION).encode()),
        ("content-type", b"application/json"),
    ]


def dead_letter_headers(
    reason: str, error: BaseException | None, source_topic: str, offset: int, partition: int | None = None
) -> Headers:
    """Headers of a dead-lettered message: why, and where it came from (topic, partition, offset)."""
    headers = [
        ("error.reason", reason.encode()[:1024]),
        ("source.topic", source_topic.encode()),
        ("source.offset", str(offset).encode()),
    ]
    if partition is not None:
        headers.append(("source.partition", str(partition).encode()))
    if error is not None:
        headers.append(("error.class", type(error).__name__.encode()))
        headers.append(("error.msg", str(error).encode()[:4096]))
    return headers


def make_producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent, acks=all producer (ordering per partition survives retries)."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "client_id": settings.client_id,
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None if settings.compression == "none" else settings.compression,
        "request_timeout_ms": settings.request_timeout_ms,
        "linger_ms": 5,
        "max_request_size": 8 * 1024 * 1024,
        "security_protocol": settings.security_protocol,
    }
    kwargs.update(overrides)
    return AIOKafkaProducer(**kwargs)


def make_consumer(settings: KafkaSettings, *topics: str, group_id: str | None, **overrides: Any) -> AIOKafkaConsumer:
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "client_id": settings.client_id,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_bytes": 64 * 1024 * 1024,
        "max_partition_fetch_bytes": 16 * 1024 * 1024,
        "security_protocol": settings.security_protocol,
    }
    kwargs.update(overrides)
    return AIOKafkaConsumer(*topics, **kwargs)


# --- dead letters -----------------------------------------------------------------------------------

DLQ_HEADER_PREFIXES = ("error.", "source.")
"""Headers a dead letter sets itself: those of the original message with these prefixes are replaced."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message for a dead-letter topic: the original key, value and headers plus why and whence."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers


class SourceRecord(Protocol):
    """What a dead letter needs of the consumed message (an aiokafka ``ConsumerRecord`` has it all)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


def dead_letter_of(
    record: SourceRecord,
    reason: str,
    error: BaseException | None,
    *,
    topic: str | None = None,
    extra: Sequence[tuple[str, bytes]] = (),
) -> DeadLetter:
    """The dead letter of a consumed ``record`` (to ``<record.topic>.dlq`` unless ``topic`` says otherwise).

    The original headers are kept (so the message can be replayed as it was) except ``error.*`` and
    ``source.*``, which describe this failure: ``dead_letter_headers`` plus ``extra``.
    """
    kept: Headers = [(k, bytes(v)) for k, v in record.headers or () if not k.startswith(DLQ_HEADER_PREFIXES)]
    headers = [*kept, *dead_letter_headers(reason, error, record.topic, record.offset, record.partition), *extra]
    return DeadLetter(topic or dead_letter(record.topic), record.key, record.value or b"", headers)


async def send_dead_letter(producer: AIOKafkaProducer, letter: DeadLetter) -> None:
    """Send and wait for the broker's acknowledgement (the source offset may be committed after it)."""
    await producer.send_and_wait(letter.topic, letter.value, key=letter.key, headers=letter.headers)


# --- isolation --------------------------------------------------------------------------------------

T = TypeVar("T")
R = TypeVar("R")


def split_failures(
    items: Sequence[T], process: Callable[[Sequence[T]], list[R]]
) -> tuple[list[R], list[tuple[T, Exception]]]:
    """``process(items)``; should it raise, the items are processed in halves, down to single items.

    Returns the results of every part that succeeded (in order) and each item that fails on its own
    with its exception: one bad item costs about ``2 log2(n)`` extra calls and never the batch.
    ``process`` must be safe to call again on items it already saw (the parts are retried).
    """
    if not items:
        return [], []
    try:
        return process(items), []
    except Exception as exc:  # noqa: BLE001 - any failure is isolated, then reported per item
        if len(items) == 1:
            return [], [(items[0], exc)]
    half = len(items) // 2
    good_a, bad_a = split_failures(items[:half], process)
    good_b, bad_b = split_failures(items[half:], process)
    return good_a + good_b, bad_a + bad_b


class Abandoned(Exception):
    """The work was still running ``grace_s`` after the stop was asked: it was cancelled."""


async def unless_stopped(work: Awaitable[T], stop: asyncio.Event, grace_s: float) -> T:
    """Await ``work``; should ``stop`` be set meanwhile, give it ``grace_s`` more, then cancel it (``Abandoned``).

    For the processing of one poll: a stop (SIGTERM) never waits on a dependency that does not answer for
    longer than the grace; the abandoned poll is not committed, so it is read again (at-least-once).
    """
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        stopping.cancel()
    if not task.done():
        try:
            return await asyncio.wait_for(task, grace_s)
        except TimeoutError:
            raise Abandoned from None
    return task.result()


# --- progress (liveness) ----------------------------------------------------------------------------


async def consumer_lag(consumer: AIOKafkaConsumer, timeout_s: float = 1.0) -> int | None:
    """Messages the broker holds beyond the consumer's position, over its assigned partitions (None: unknown)."""
    total = 0
    known = False
    try:
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            position = await asyncio.wait_for(consumer.position(tp), timeout_s)
            total += max(0, int(high) - int(position))
            known = True
    except (KafkaError, TimeoutError, AssertionError) as exc:  # rebalancing, not assigned any more
        log.debug("consumer lag unknown: %s", exc)
        return None
    return total if known else None


class ConsumerProgress:
    """Whether a consumer loop still makes progress: the truth behind a service's ``/healthz``.

    The loop calls ``start()`` from its task, ``polled(consumer, n)`` after every poll (``n`` records in
    hand), ``processed(k)`` when records are done (delivered, stored or dead-lettered) and
    ``waiting_for("Redis")`` / ``waiting_for(None)`` around deliberate waits for a dependency that a
    restart cannot bring back. ``health()`` is not ok when

    * the loop's task ended while the service was not stopping (an exception, a return), or
    * input is waiting (records in hand, or lag at the last empty poll) and no record was processed for
      ``stall_after_s`` seconds while not waiting for a dependency (then it says what it waits for).
    """

    def __init__(self, name: str, stall_after_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.stall_after_s = stall_after_s
        self._clock = clock
        self.task: asyncio.Task[Any] | None = None
        self.stopping = False
        self.last_poll: float | None = None
        self.last_progress: float | None = None
        """when the last record was processed, or the last poll found nothing to do"""
        self.in_flight = 0
        self.lag: int | None = None
        self.processed_total = 0
        self.waiting: str | None = None
        self.waiting_since: float | None = None

    def start(self, task: asyncio.Task[Any] | None = None) -> None:
        self.task = task or asyncio.current_task()
        self.stopping = False
        now = self._clock()
        self.last_poll = self.last_progress = now

    def stop(self) -> None:
        """The service is stopping: the task ending is expected."""
        self.stopping = True

    def idle(self) -> None:
        """Nothing is waiting to be processed right now."""
        self.in_flight = 0
        self.last_progress = self._clock()

    async def polled(self, consumer: AIOKafkaConsumer | None, records: int) -> None:
        now = self._clock()
        self.last_poll = now
        self.in_flight = records
        if records == 0:
            self.lag = await consumer_lag(consumer) if consumer is not None else 0
            if not self.lag:
                self.last_progress = now

    def processed(self, count: int = 1) -> None:
        self.in_flight = max(0, self.in_flight - count)
        self.processed_total += count
        self.last_progress = self._clock()

    def waiting_for(self, dependency: str | None) -> None:
        if dependency != self.waiting:
            self.waiting_since = self._clock() if dependency else None
        self.waiting = dependency

    def health(self) -> dict[str, object]:
        now = self._clock()
        state: dict[str, object] = {
            "ok": True,
            "consumer": self.name,
            "in_flight": self.in_flight,
            "lag": self.lag,
            "processed": self.processed_total,
            "last_poll_age_s": None if self.last_poll is None else round(now - self.last_poll, 1),
            "last_progress_age_s": None if self.last_progress is None else round(now - self.last_progress, 1),
        }
        if self.waiting:
            state["waiting_for"] = self.waiting
            state["waiting_s"] = round(now - (self.waiting_since or now), 1)
        task = self.task
        if task is not None and task.done() and not self.stopping:
            error = None if task.cancelled() else task.exception()
            why = "cancelled" if task.cancelled() else (f"{type(error).__name__}: {error}" if error else "returned")
            return {**state, "ok": False, "reason": f"the {self.name} task ended ({why})"}
        if task is None or self.stopping or self.waiting:
            return state
        waiting = self.in_flight > 0 or bool(self.lag)
        since = max(self.last_progress or 0.0, self.last_poll or 0.0) if not waiting else (self.last_progress or 0.0)
        if waiting and now - since > self.stall_after_s:
            pending = f"{self.in_flight} records in hand" if self.in_flight else f"lag {self.lag}"
            reason = f"no message processed for {now - since:.0f} s while input is waiting ({pending})"
            return {**state, "ok": False, "reason": reason}
        if not waiting and self.last_poll is not None and now - self.last_poll > self.stall_after_s:
            return {**state, "ok": False, "reason": f"no poll for {now - self.last_poll:.0f} s"}
        return state
