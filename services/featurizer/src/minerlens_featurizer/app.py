"""The Faust worker: topics, the state table, two agents, two timers and the web pages (the Faust plumbing:
``faust_io``).

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

Nothing a pod sends stops the worker. The engine dead-letters messages it cannot apply; a window that
cannot be encoded is isolated (the micro-batch is encoded again in halves) and dead-lettered with reason
``encode_error``, the others flow and the input is acknowledged; a record the broker refuses for its size
is dead-lettered too; sends and state writes that fail for the broker's sake are retried with backoff
(the worker waits, it does not crash into a replay of the same batch). ``/healthz`` fails when the app
crashed, an agent's task ended, or input waits and nothing was handled for ``stall_timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, cast

from aiokafka.errors import MessageSizeTooLargeError
from faust.streams import Stream
from faust.types import TP, ChannelT, EventT, StreamT, TableT
from minerlens_core.kafka import dead_letter_headers
from minerlens_core.settings import KafkaSettings

from minerlens_featurizer.delivery import ENCODE_ERROR, WindowLetter, encode_isolated, retrying, window_dead_letter
from minerlens_featurizer.encode import Record, WindowEncoder
from minerlens_featurizer.engine import CONTROL, INPUT, Featurizer
from minerlens_featurizer.faust_io import Outputs, TableState, add_pages, broker_url, faust_app, raw_schema
from minerlens_featurizer.metrics import FeaturizerMetrics
from minerlens_featurizer.outbox import Outbox, PendingWindow, Writes
from minerlens_featurizer.settings import FeaturizerSettings
from minerlens_featurizer.spec import ServedSpec, served_spec
from minerlens_featurizer.state import offset_key

log = logging.getLogger(__name__)


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
        self.app = faust_app(settings, self.kafka, partitions)
        app = self.app
        self.input_topic = app.topic(settings.input_topic, internal=False, schema=raw_schema())
        self.control_topic = app.topic(
            settings.control_topic,
            internal=True,
            partitions=partitions,
            replicas=settings.replication_factor,
            retention=3600.0,
            deleting=True,
            schema=raw_schema(),
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
                app.topic(settings.output_topic, internal=False, schema=raw_schema()),
                app.topic(settings.dlq_topic, internal=False, schema=raw_schema()),
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
        self._last_progress = time.monotonic()
        """when a message was last handed to the engine, a micro-batch flushed or no input was waiting"""
        self._input_seen: dict[int, int] = {}
        """input partition -> offset of the last message handed to the engine"""
        self._waiting_for: str | None = None
        self._stopping = False

        self.featurize_agent = app.agent(self.input_topic, name="featurize")(self._featurize)
        self.control_agent = app.agent(self.control_topic, name="control")(self._control)
        app.timer(settings.tick_interval_s, name="watermark_tick")(self._tick)
        app.timer(min(settings.flush_max_delay_s, 0.05), name="flush_due")(self._flush_due)
        app.on_partitions_revoked.connect(self._on_revoked)
        app.on_rebalance_complete.connect(self._resume_after_state)
        add_pages(app, self.metrics.registry, self.health, self.served.tag)

    # --- agents ---------------------------------------------------------------------------------------

    async def _featurize(self, stream: StreamT[Any]) -> None:
        """Syscall batches and drop reports -> the engine; held until their micro-batch is flushed."""
        s = cast(Stream[Any], stream).noack()
        async for event in s.events():
            m = event.message
            try:  # the engine never raises (its contract); should it, the agent must not die of it
                self.engine.on_input(event.value, event.key, m.partition, m.offset, m.topic)
            except Exception as exc:  # noqa: BLE001 - logged and dead-lettered by _internal_error
                await self._internal_error(event, exc)
            self.events_seen += 1
            self._input_seen[m.partition] = m.offset
            self._last_progress = time.monotonic()
            await self._hold(s, event)

    async def _control(self, stream: StreamT[Any]) -> None:
        """Watermark ticks and fanned-out node-wide losses -> the engine."""
        s = cast(Stream[Any], stream).noack()
        async for event in s.events():
            p = event.message.partition
            try:
                self.engine.on_control(event.value, p, event.message.offset, await self._caught_up(p))
            except Exception:
                log.exception("control message of partition %d raised (skipped)", p)
                self.metrics.internal_errors.inc()
            self.events_seen += 1
            self._last_progress = time.monotonic()
            await self._hold(s, event)

    async def _internal_error(self, event: EventT[Any], exc: Exception) -> None:
        """An input message the engine raised on: dead-lettered here (``internal_error``), then held and acked."""
        m = event.message
        log.error("featurizer raised on %s/%d@%d: dead-lettered", m.topic, m.partition, m.offset, exc_info=exc)
        self.metrics.internal_errors.inc()
        self.metrics.dead_letters.labels("internal_error").inc()
        headers = dead_letter_headers("internal_error", exc, m.topic, m.offset, m.partition)
        await self._retry(
            "dead-lettering a message",
            lambda: self._send_letter(WindowLetter(event.key, bytes(event.value or b""), headers)),
        )

    async def _send_letter(self, letter: WindowLetter) -> None:
        sent = await self.outputs.dead_letters.send(
            key=letter.key, value=letter.value, headers=letter.headers, force=True
        )
        await asyncio.gather(sent)

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
        """Vectorise and send what is pending, wait for delivery, persist state, ack the held events.

        Never raises for what the messages hold: windows that cannot be encoded or sent are dead-lettered;
        broker failures are retried until they pass (or the worker stops: then nothing is acknowledged and
        the held messages are replayed by the next owner).
        """
        async with self._lock:
            held, self._held, self._held_since = self._held, [], None
            try:
                box = self.engine.take()
            except Exception:  # the engine's state cannot be written (a bug): keep everything, ack nothing
                log.exception("collecting the micro-batch failed; its %d messages stay held", len(held))
                self.metrics.internal_errors.inc()
                self._held, self._held_since = held + self._held, time.monotonic() + 1.0  # retried in ~1 s
                return  # /healthz reports the stall if it persists; a restart replays the held messages
            if not held and not box:
                return
            started = time.perf_counter()
            records, letters = self._encode(box, held)
            await self._retry("delivering a micro-batch", lambda: self._deliver(records, letters, box))
            last_event = {ev.message.partition: ev for _, ev in held}
            writes: list[tuple[int, Writes, EventT[Any]]] = []
            for partition, w in box.writes.items():
                event = last_event.get(partition)
                if event is None:
                    log.error("state writes for partition %d without an event of it: skipped", partition)
                    continue
                writes.append((partition, w, event))
            await self._retry("writing the state changelog", lambda: self._persist(writes))
            for s, event in held:
                await s.ack(event)
            self.flushes += 1
            self._last_progress = time.monotonic()
            self.metrics.flush_seconds.observe(time.perf_counter() - started)
            self.metrics.flush_windows.observe(len(records))

    def _encode(
        self, box: Outbox, held: list[tuple[StreamT[Any], EventT[Any]]]
    ) -> tuple[list[Record], list[WindowLetter]]:
        """Records of the windows that encode; ``encode_error`` dead letters for those that fail alone."""
        records, failed = encode_isolated(self.encoder, box.windows)
        letters = []
        for pending, exc in failed:
            log.error(
                "window %d of %s/%s cannot be encoded (%s: %s): dead-lettered",
                pending.window.index, pending.meta.pod.uid, pending.meta.container_id, type(exc).__name__, exc,
                exc_info=exc,
            )  # fmt: skip
            self.metrics.internal_errors.inc()
            self.metrics.dead_letters.labels(ENCODE_ERROR).inc()
            letters.append(self._window_letter(pending, ENCODE_ERROR, exc, held))
        return records, letters

    def _window_letter(
        self, p: PendingWindow, reason: str, exc: BaseException, held: list[tuple[StreamT[Any], EventT[Any]]]
    ) -> WindowLetter:
        st = self.engine.streams.get((p.window.pod_uid, p.window.container_id))
        partition = st.header.partition if st is not None else None
        if partition is None:  # a retired stream: the partition of a held message of the pod, if any
            uid = p.meta.pod.uid.encode()
            partition = next((ev.message.partition for _, ev in held if ev.key == uid), None)
        offset = self._input_seen.get(partition, -1) if partition is not None else -1
        return window_dead_letter(p, reason, exc, self.settings.input_topic, partition, offset)

    async def _deliver(self, records: list[Record], letters: list[WindowLetter], box: Outbox) -> None:
        sent = []
        undeliverable: list[WindowLetter] = []
        for r in records:
            try:
                sent.append(await self.outputs.windows.send(key=r.key, value=r.value, headers=r.headers, force=True))
            except (MessageSizeTooLargeError, ValueError, TypeError) as exc:  # this record, never the batch
                log.error("the broker cannot take a window of %d bytes (%s): dead-lettered", len(r.value), exc)
                self.metrics.dead_letters.labels("undeliverable").inc()
                headers = [*dead_letter_headers("undeliverable", exc, self.settings.output_topic, -1), *r.headers]
                undeliverable.append(WindowLetter(r.key, r.value[:65536], headers))
        for letter in [*letters, *undeliverable]:
            sent.append(
                await self.outputs.dead_letters.send(
                    key=letter.key, value=letter.value, headers=letter.headers, force=True
                )
            )
        for d in box.dead_letters:
            headers = dead_letter_headers(d.reason, d.error, d.topic, d.offset, d.partition)
            sent.append(await self.outputs.dead_letters.send(key=d.key, value=d.value, headers=headers, force=True))
        for c in box.control:
            targets = [q for q in range(self.partitions) if q != c.skip] if c.partition is None else [c.partition]
            for p in targets:
                sent.append(await self.outputs.control.send(value=c.value, partition=p, force=True))
        if sent:
            await asyncio.gather(*sent)  # broker acknowledgements (acks=all)

    async def _persist(self, writes: list[tuple[int, Writes, EventT[Any]]]) -> None:
        persisted: list[Awaitable[Any]] = []
        for partition, w, event in writes:
            persisted += self.state.apply(partition, w, event)
        if not self.in_memory:  # test_context: no producer runs, the memory store is the state
            await asyncio.gather(*persisted)  # the state is in the changelog before offsets move

    async def _retry(self, what: str, attempt: Any) -> None:
        def failed(exc: BaseException) -> None:
            self.metrics.delivery_retries.inc()
            self._waiting_for = "Kafka"

        try:
            await retrying(
                what, attempt, stopping=lambda: self._stopping or bool(self.app.should_stop), on_failure=failed
            )
        finally:
            self._waiting_for = None

    # --- timers and signals ---------------------------------------------------------------------------

    async def _tick(self) -> None:
        """Ask every partition's owner to close quiet time windows and flush idle streams."""
        if not self._held and not self.input_lag():
            self._last_progress = time.monotonic()  # idle: nothing waits, so nothing is stalled
        try:
            value = self.engine.tick().model_dump_json().encode()
            for p in range(self.partitions):
                await self.control_topic.send(value=value, partition=p)
        except Exception:  # a timer that raises stops for good in Faust: log, try again next period
            log.exception("sending the watermark tick failed")
            self.metrics.internal_errors.inc()

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

    # --- liveness -------------------------------------------------------------------------------------

    def stopping(self) -> None:
        """The worker is shutting down: agents ending is expected, retries give up."""
        self._stopping = True

    def input_lag(self) -> int:
        """Input messages the broker holds beyond the last one handed to the engine (assigned partitions)."""
        if self.in_memory:
            return 0
        lag = 0
        try:
            assigned = [tp for tp in self.app.consumer.assignment() if tp.topic == self.settings.input_topic]
            for tp in assigned:
                high = self.app.consumer.highwater(tp)
                seen = self._input_seen.get(tp.partition)
                if high is not None and seen is not None:
                    lag += max(0, int(high) - seen - 1)
        except Exception:  # no consumer yet, rebalancing
            log.debug("input lag unknown", exc_info=True)
        return lag

    def health(self) -> dict[str, Any]:
        """Liveness: not ok when the app crashed, an agent's task ended, or input waits unhandled too long."""
        now = time.monotonic()
        lag, held = self.input_lag(), len(self._held)
        body: dict[str, Any] = {
            "ok": True,
            "status": "ok",
            "streams": len(self.engine.streams),
            "held": held,
            "lag": lag,
            "last_progress_age_s": round(now - self._last_progress, 1),
        }
        if self._waiting_for:
            body["waiting_for"] = self._waiting_for
        reason = None
        if self.app.crash_reason is not None:
            reason = f"the app crashed: {self.app.crash_reason!r}"
        elif not (self._stopping or self.app.should_stop):
            for agent in (self.featurize_agent, self.control_agent):
                # Faust's supervisor replaces a crashed actor: dead means no actor of the agent runs any more
                actors = [a for a in list(cast(Any, agent)._actors) if a.actor_task is not None]
                if actors and all(a.actor_task.done() for a in actors):
                    why = getattr(actors[-1], "crash_reason", None)
                    reason = f"agent {agent.name} has no running task (last crash: {why!r})"
            stalled = now - self._last_progress
            if reason is None and (lag or held) and not self._waiting_for and stalled > self.settings.stall_timeout_s:
                reason = f"no message handled for {stalled:.0f} s while input is waiting (lag {lag}, held {held})"
        if reason is not None:
            body.update(ok=False, status="failing", reason=reason)
        return body

    @property
    def metrics_registry(self) -> Any:
        return self.metrics.registry

    def held(self) -> int:
        return len(self._held)


__all__ = ["FeaturizerApp", "FeaturizerMetrics", "Outputs", "broker_url"]
