"""The Faust worker: topics, the state table, two agents, two timers and the web pages.

The agents only adapt: they hand each message to the ``Featurizer`` engine and hold the event
(manual acks). A micro-batch is flushed when the agent's queue runs dry, when it is big enough, or
by a timer after ``flush_max_delay_s``: one ``vectorize_many`` call for all its windows, the sends,
**waiting until the broker acknowledged them**, then the state writes (inside an event of the
partition they belong to, so they go to that changelog partition), then the acks. Offsets are
committed only after acks and Faust flushes the producer before committing, so

    committed offset  =>  state persisted  =>  windows delivered.

Windows are never emitted from ``on_window_close`` (wall-clock timer, loses windows on rebalance):
count windows close when full, time windows when a later event of the stream or a watermark tick
closes them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import weakref
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.streams import Stream, _current_event
from faust.types import TP, ChannelT, EventT, StreamT, TableT
from faust.web import Request, Response, View
from minerlens_core.kafka import dead_letter_headers
from minerlens_core.settings import KafkaSettings
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from minerlens_featurizer.encode import WindowEncoder
from minerlens_featurizer.engine import CONTROL, INPUT, Featurizer
from minerlens_featurizer.metrics import FeaturizerMetrics
from minerlens_featurizer.outbox import Outbox, Writes
from minerlens_featurizer.settings import FeaturizerSettings
from minerlens_featurizer.spec import ServedSpec, served_spec
from minerlens_featurizer.state import offset_key

log = logging.getLogger(__name__)
_METRICS_TYPE = "; ".join(p for p in CONTENT_TYPE_LATEST.split("; ") if not p.startswith("charset"))
"""aiohttp sets the charset itself and refuses it inside content_type"""


def _raw_schema() -> faust.Schema[bytes, bytes]:
    return faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


@dataclass(frozen=True)
class Outputs:
    """Where windows, dead letters and control messages go (Kafka topics; in-memory channels in unit tests)."""

    windows: ChannelT[Any]
    dead_letters: ChannelT[Any]
    control: ChannelT[Any]


def _free_port(host: str) -> int:
    """An ephemeral port for ``web_port=0`` (Faust needs a real one); it is logged at start-up."""
    with socket.socket() as s:
        s.bind((host, 0))
        port = int(s.getsockname()[1])
    log.info("web server (/metrics, /healthz, /readyz) on %s:%d", host, port)
    return port


def broker_url(kafka: KafkaSettings) -> str:
    return ";".join(f"kafka://{h.strip()}" for h in kafka.bootstrap.split(",") if h.strip())


class TableState:
    """The engine's view of the Faust table (raw bytes keys and values)."""

    def __init__(self, table: TableT[bytes, bytes]) -> None:
        self.table = table

    def get(self, key: bytes) -> bytes | None:
        value = self.table.get(key)
        return bytes(value) if value is not None else None

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        return list(self.table.items())

    def apply(self, partition: int, writes: Writes, event: EventT[Any]) -> list[Awaitable[Any]]:
        """Write ``writes`` to the local store and the changelog partition; the futures resolve on delivery.

        The changelog messages are sent here rather than through ``table[key] = value`` because that
        path drops the send futures, and Faust's own pre-commit flush of its producer buffer gives up
        after 0.1 s (``ProducerBuffer.flush_atmost``): offsets could be committed ahead of the state.
        The event context is set for stores that pick their partition database from it (RocksDB).
        """
        sent: list[Awaitable[Any]] = []
        token = _current_event.set(weakref.ref(event))
        try:
            for key, value in writes.sets.items():
                sent.append(self.table.send_changelog(partition, key, value))
                self.table.data[key] = value
            for key in writes.deletes:
                if key in self.table.data:
                    sent.append(self.table.send_changelog(partition, key, None, value_serializer="raw"))
                    del self.table.data[key]
        finally:
            _current_event.reset(token)
        return sent


class FeaturizerApp:
    """One featurizer worker. ``partitions`` must equal the input topic's partition count.

    ``in_memory_outputs`` is for unit tests with ``agent.test_context()``: windows, dead letters and
    control messages go to in-memory channels and changelog delivery is not awaited (no producer runs).
    """

    def __init__(
        self,
        settings: FeaturizerSettings,
        kafka: KafkaSettings | None = None,
        *,
        partitions: int,
        served: ServedSpec | None = None,
        in_memory_outputs: bool = False,
    ) -> None:
        self.settings = settings
        self.kafka = kafka or KafkaSettings()
        self.in_memory = in_memory_outputs
        self.partitions = partitions
        self.served = served or served_spec(settings)
        self.metrics = FeaturizerMetrics()
        self.app = faust.App(
            settings.app_id,
            broker=broker_url(self.kafka),
            store=settings.store,
            datadir=str(settings.data_dir),
            autodiscover=False,
            topic_partitions=partitions,
            topic_replication_factor=settings.replication_factor,
            table_standby_replicas=settings.standby_replicas,
            processing_guarantee="at_least_once",
            broker_client_id=self.kafka.client_id,
            broker_session_timeout=settings.session_timeout_s,
            broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
            producer_acks=-1,
            producer_compression_type=None if self.kafka.compression == "none" else self.kafka.compression,
            producer_max_request_size=8 * 1024 * 1024,
            consumer_max_fetch_size=16 * 1024 * 1024,
            consumer_auto_offset_reset="earliest",
            key_serializer="raw",
            value_serializer="raw",
            web_enabled=settings.web_enabled,
            web_bind=settings.web_bind,
            web_port=settings.web_port or _free_port(settings.web_bind),
        )
        app = self.app
        self.input_topic = app.topic(settings.input_topic, internal=False, schema=_raw_schema())
        self.control_topic = app.topic(
            settings.control_topic,
            internal=True,
            partitions=partitions,
            replicas=settings.replication_factor,
            retention=3600.0,
            deleting=True,
            schema=_raw_schema(),
        )
        self.table: TableT[bytes, bytes] = app.Table(
            settings.state_table,
            key_type=bytes,  # faust derives the changelog serializers from these: bytes -> raw
            value_type=bytes,
            partitions=partitions,
            help="per-stream window state: headers and buffered-event segments",
        )
        self.state = TableState(self.table)
        if in_memory_outputs:
            self.outputs = Outputs(app.channel(), app.channel(), app.channel())
        else:
            self.outputs = Outputs(
                app.topic(settings.output_topic, internal=False, schema=_raw_schema()),
                app.topic(settings.dlq_topic, internal=False, schema=_raw_schema()),
                self.control_topic,
            )
        self.engine = Featurizer(self.served, settings, self.state, self.metrics)
        self.encoder = WindowEncoder(self.served)
        self._held: list[tuple[StreamT[Any], EventT[Any]]] = []
        self._held_since: float | None = None
        self._lock = asyncio.Lock()
        self.flushes = 0
        self.events_seen = 0
        """messages handed to the engine (both agents), for tests and the benchmark"""

        self.featurize_agent = app.agent(self.input_topic, name="featurize")(self._featurize)
        self.control_agent = app.agent(self.control_topic, name="control")(self._control)
        app.timer(settings.tick_interval_s, name="watermark_tick")(self._tick)
        app.timer(min(settings.flush_max_delay_s, 0.05), name="flush_due")(self._flush_due)
        app.on_partitions_revoked.connect(self._on_revoked)
        app.on_rebalance_complete.connect(self._resume_after_state)
        self._add_pages()

    # --- agents ---------------------------------------------------------------------------------------

    async def _featurize(self, stream: StreamT[Any]) -> None:
        """Syscall batches and drop reports -> the engine; held until their micro-batch is flushed."""
        s = cast(Stream[Any], stream).noack()
        async for event in s.events():
            m = event.message
            self.engine.on_input(event.value, event.key, m.partition, m.offset, m.topic)
            self.events_seen += 1
            await self._hold(s, event)

    async def _control(self, stream: StreamT[Any]) -> None:
        """Watermark ticks and fanned-out node-wide losses -> the engine."""
        s = cast(Stream[Any], stream).noack()
        async for event in s.events():
            p = event.message.partition
            self.engine.on_control(event.value, p, event.message.offset, await self._caught_up(p))
            self.events_seen += 1
            await self._hold(s, event)

    async def _hold(self, stream: StreamT[Any], event: EventT[Any]) -> None:
        self._held.append((stream, event))
        if self._held_since is None:
            self._held_since = time.monotonic()
        if (
            cast(ChannelT[Any], stream.channel).queue.empty()
            or len(self._held) >= self.settings.flush_max_messages
            or self.engine.pending() >= self.settings.flush_max_windows
        ):
            await self.flush()

    async def _caught_up(self, partition: int) -> bool:
        """Whether every input message of the partition that Kafka holds has been applied (no backlog).

        Only then may other partitions' watermarks close this partition's windows, and wall-clock
        idleness retire its streams: while a backlog is replayed its streams are behind their node.
        Unknown (no fetch yet, nothing applied yet) counts as not caught up.
        """
        if self.in_memory:  # unit tests drive ticks explicitly; no consumer runs
            return True
        tp = TP(self.settings.input_topic, partition)
        try:
            high = self.app.consumer.highwater(tp)
        except Exception:  # not assigned (any more)
            log.debug("high watermark of %s unknown", tp, exc_info=True)
            return False
        applied = self.engine.next_offset(INPUT, partition)
        if high is None:
            return False
        if applied is None:
            return int(high) == 0
        return int(high) - applied <= self.settings.catchup_lag

    # --- micro-batches --------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Vectorise and send what is pending, wait for delivery, persist state, ack the held events."""
        async with self._lock:
            held, self._held, self._held_since = self._held, [], None
            box = self.engine.take()
            if not held and not box:
                return
            started = time.perf_counter()
            try:
                await self._deliver(box)
            except Exception as exc:
                log.exception("delivery failed; stopping so that the held messages are replayed")
                await self.app.crash(exc)
                raise
            last_event = {ev.message.partition: ev for _, ev in held}
            persisted: list[Awaitable[Any]] = []
            for partition, writes in box.writes.items():
                event = last_event.get(partition)
                if event is None:
                    log.error("state writes for partition %d without an event of it: skipped", partition)
                    continue
                persisted += self.state.apply(partition, writes, event)
            try:
                if not self.in_memory:  # test_context: no producer runs, the memory store is the state
                    await asyncio.gather(*persisted)  # the state is in the changelog before offsets move
            except Exception as exc:
                log.exception("state changelog write failed; stopping so that the held messages are replayed")
                await self.app.crash(exc)
                raise
            for s, event in held:
                await s.ack(event)
            self.flushes += 1
            self.metrics.flush_seconds.observe(time.perf_counter() - started)
            self.metrics.flush_windows.observe(len(box.windows))

    async def _deliver(self, box: Outbox) -> None:
        sent = []
        for r in self.encoder.encode(box.windows):
            sent.append(await self.outputs.windows.send(key=r.key, value=r.value, headers=r.headers, force=True))
        for d in box.dead_letters:
            headers = dead_letter_headers(d.reason, d.error, d.topic, d.offset, d.partition)
            sent.append(await self.outputs.dead_letters.send(key=d.key, value=d.value, headers=headers, force=True))
        for c in box.control:
            targets = [q for q in range(self.partitions) if q != c.skip] if c.partition is None else [c.partition]
            for p in targets:
                sent.append(await self.outputs.control.send(value=c.value, partition=p, force=True))
        if sent:
            await asyncio.gather(*sent)  # broker acknowledgements (acks=all)

    # --- timers and signals ---------------------------------------------------------------------------

    async def _tick(self) -> None:
        """Ask every partition's owner to close quiet time windows and flush idle streams."""
        value = self.engine.tick().model_dump_json().encode()
        for p in range(self.partitions):
            await self.control_topic.send(value=value, partition=p)

    async def _flush_due(self) -> None:
        since = self._held_since
        if since is not None and time.monotonic() - since >= self.settings.flush_max_delay_s:
            await self.flush()

    async def _on_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        revoked: set[TP] = set(args[0]) if args else set(kwargs.get("revoked", ()))
        self.engine.forget_partitions(tp.partition for tp in revoked if tp.topic == self.settings.input_topic)

    async def _resume_after_state(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Make consumption resume right after the messages the stored state holds, and lose none.

        Sent after table recovery and before Faust seeks to the committed offsets. Those can be ahead of
        the state: Faust acks, without handing them to the agent, the events it skips while stopping or
        rebalancing (flow control suspended), so committing them would lose batches. They can also lag
        behind it (commit interval, crash), which the engine's offset check absorbs. Committing
        ``stored + 1`` makes the seek land exactly after the state.

        Flow control is suspended here because of a race in Faust's recovery (faust-streaming/faust#596):
        recovery resumes flow control to read the changelogs, then resumes the input partitions, seeks,
        and resumes flow control again, which *clears the agents' queues*. A message fetched between the
        seek and that second resume was put into a queue and silently dropped (one batch lost after about
        one restart in five here). Suspended, the consumer waits at the flow-control gate instead and
        delivers after the clear; Faust's own resume right after this signal lifts the suspension.
        """
        self.app.flow_control.suspend()
        offsets: dict[TP, int] = {}
        kinds = {self.settings.input_topic: INPUT, self.settings.control_topic: CONTROL}
        for tp in self.app.consumer.assignment():
            kind = kinds.get(tp.topic)
            stored = self.state.get(offset_key(kind, tp.partition)) if kind is not None else None
            if stored is not None:
                offsets[tp] = int(stored) + 1
        if offsets:
            log.info("resuming after the stored state: %s", {f"{t.topic}/{t.partition}": o for t, o in offsets.items()})
            await cast(Any, self.app.consumer)._commit(offsets)

    # --- web ------------------------------------------------------------------------------------------

    def _add_pages(self) -> None:
        fapp, registry = self.app, self.metrics.registry

        @fapp.page("/metrics")
        async def metrics(web: View, request: Request) -> Response:
            return web.bytes(generate_latest(registry), content_type=_METRICS_TYPE)

        @fapp.page("/healthz")
        async def healthz(web: View, request: Request) -> Response:
            crashed = fapp.crash_reason is not None
            body = {"status": "crashed" if crashed else "ok", "streams": len(self.engine.streams)}
            return web.json(body, status=503 if crashed else 200)

        @fapp.page("/readyz")
        async def readyz(web: View, request: Request) -> Response:
            ready = not fapp.rebalancing and cast(Any, fapp.tables).recovery.completed.is_set()
            body = {"ready": ready, "rebalancing": fapp.rebalancing, "spec": self.served.tag}
            return web.json(body, status=200 if ready else 503)

    @property
    def metrics_registry(self) -> Any:
        return self.metrics.registry

    def held(self) -> int:
        return len(self._held)


__all__ = ["FeaturizerApp", "FeaturizerMetrics", "Outputs", "broker_url"]
