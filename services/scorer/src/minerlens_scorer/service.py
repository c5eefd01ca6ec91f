"""The Kafka adapter: windows topic in; verdicts, OCSF alerts and dead letters out. Logic lives elsewhere.

Per poll (``getmany``, up to ``batch_max`` windows): decode -> ``Scorer.score`` (one ONNX call per model)
-> ``AlertEngine`` -> produce verdicts (keyed by pod uid), findings (keyed by pod uid) and dead letters ->
wait for every acknowledgement -> commit the consumed offsets. A crash before the commit re-consumes the
batch; the alert engine recognises the replayed windows, so no alert is raised twice.

Alongside, the latest state of every alert that changed in the batch goes to the state topic (compacted,
keyed by pod uid; the finding JSON with the full alert state in ``unmapped.minerlens``). On every partition
assignment (start, rebalance) the open alerts and replay marks are rebuilt from the latest state per pod.
When producing or committing fails, the engine is reset, rebuilt the same way, and consumption restarts
from the committed offsets.

No window stops the scorer: one that cannot be decoded or scored goes to the dead-letter topic with the
reason and is committed with its batch. Should scoring a batch raise (a bug some input triggers), the
batch is scored again in halves (``split_failures``) and only the windows that fail alone are
dead-lettered (``scorer error``). ``/healthz`` fails when the consumer loop died or stopped making
progress while windows wait (``ConsumerProgress``); ``/readyz`` says whether it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from minerlens_core.errors import FeatureSpecMismatchError
from minerlens_core.http_probes import probe_app, serve
from minerlens_core.kafka import (
    ConsumerProgress,
    Headers,
    dead_letter_of,
    make_consumer,
    make_producer,
    message_headers,
    split_failures,
)
from minerlens_core.schemas.envelope import SCHEMA_VERSION, utcnow
from minerlens_core.schemas.ocsf import DetectionFinding
from minerlens_core.schemas.windows import FeatureWindow, Verdict, decode_window
from minerlens_core.settings import KafkaSettings

from minerlens_scorer import __version__
from minerlens_scorer.alerting import AlertEngine, AlertPolicy
from minerlens_scorer.findings import ACTIVITY_NAMES, FindingFactory
from minerlens_scorer.metrics import ScorerMetrics
from minerlens_scorer.model_repository import ModelRepository, RepositoryEvent
from minerlens_scorer.model_set import ModelSet
from minerlens_scorer.restore import latest_findings
from minerlens_scorer.scoring import SPEC_MISMATCH, Rejected, Scorer
from minerlens_scorer.settings import ScorerSettings

log = logging.getLogger(__name__)

UNDECODABLE = "undecodable feature window"
SCORER_ERROR = "scorer error"
FINDING_HEADERS: Headers = [
    ("minerlens.kind", b"detection_finding"),
    ("minerlens.schema_version", str(SCHEMA_VERSION).encode()),
    ("content-type", b"application/json"),
    ("ocsf.class_uid", b"2004"),
]


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers


def policy_from(settings: ScorerSettings) -> AlertPolicy:
    return AlertPolicy(
        k=settings.alert_k,
        n=settings.alert_n,
        resolve_m=settings.resolve_m,
        resolve_factor=settings.resolve_factor,
        quiet_timeout_s=settings.quiet_timeout_s,
        update_score_delta=settings.update_score_delta,
        max_window_ids=settings.max_window_ids,
    )


def finding_message(topic: str, finding: DetectionFinding) -> Outgoing:
    m = finding.unmapped.get("minerlens", {})
    key = str(m.get("pod_uid", "")).encode() or None
    return Outgoing(topic, key, finding.model_dump_json(exclude_none=True).encode(), FINDING_HEADERS)


class _Assignments(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, service: ScorerService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.service.restore_needed = True
        log.info("assigned %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))


class ScorerService:
    def __init__(self, settings: ScorerSettings, kafka: KafkaSettings, *, product_version: str = __version__) -> None:
        self.settings = settings
        self.kafka = kafka
        self.metrics = ScorerMetrics()
        self.policy = policy_from(settings)
        self.engine = AlertEngine(self.policy, FindingFactory(self.policy, product_version, settings.explain_base_url))
        self.repository = ModelRepository(
            settings.models_dir,
            primary=settings.primary_model,
            threads=settings.onnx_threads,
            reasons_top=settings.reasons_top,
            on_event=self._on_repository_event,
        )
        self.scorer: Scorer | None = None
        self.restore_needed = True
        self.restored = False
        self.consuming = False
        self.http_port: int | None = None
        self.progress = ConsumerProgress("scorer consumer", settings.stall_timeout_s)
        self.produced: dict[str, int] = {"verdicts": 0, "alerts": 0, "state": 0, "dead_letters": 0}
        self._stop = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None

    # ---- control -------------------------------------------------------------------------------------
    def stop(self) -> None:
        self.progress.stop()
        self._stop.set()

    def health(self) -> dict[str, object]:
        """Liveness: not ok when the consumer loop ended or stalled with windows waiting (restart helps)."""
        return {**self.progress.health(), "consuming": self.consuming}

    def ready(self) -> dict[str, object]:
        models = self.scorer.models if self.scorer else None
        state: dict[str, object] = {
            "ok": models is not None and self.consuming and self.restored,
            "models": [f"{m.name} {m.version}" for m in models.models] if models else [],
            "primary": f"{models.primary.name} {models.primary.version}" if models else None,
            "consuming": self.consuming,
            "alerts_restored": self.restored,
            "open_alerts": len(self.engine.open_alerts),
            "refused_artifacts": {str(p): why for p, why in self.repository.refused.items()},
        }
        return state

    # ---- models --------------------------------------------------------------------------------------
    def _on_repository_event(self, event: RepositoryEvent) -> None:
        self.metrics.model_reloads.labels(event.kind).inc()

    def install(self, models: ModelSet) -> None:
        """Serve ``models`` from the next batch on (atomic swap)."""
        if self.scorer is None:
            self.scorer = Scorer(models, min_syscalls=self.settings.min_syscalls)
        else:
            self.scorer.swap(models)
        self.metrics.model_info.clear()
        for m in models.models:
            self.metrics.model_info.labels(m.name, m.version).set(1 if m is models.primary else 0)

    async def reload_models(self) -> bool:
        """Rescan the models directory off the event loop; True when the served models changed."""
        new = await asyncio.to_thread(self.repository.refresh)
        if new is not None:
            self.install(new)
            return True
        return False

    async def _watch_models(self) -> None:
        interval = self.settings.reload_interval_s
        while interval > 0 and not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)
            if not self._stop.is_set():
                try:
                    await self.reload_models()
                except Exception:  # the watcher must survive anything the filesystem does
                    log.exception("model directory scan failed")

    async def _wait_for_models(self) -> bool:
        while not self._stop.is_set():
            await self.reload_models()
            if self.scorer is not None:
                return True
            log.warning("no servable model in %s yet; retrying", self.settings.models_dir)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), max(self.settings.reload_interval_s, 1.0))
        return False

    # ---- data ----------------------------------------------------------------------------------------
    def _dead_letter(self, record: ConsumerRecord, reason: str, error: BaseException | None) -> Outgoing:
        self.metrics.dead_letters.labels(reason).inc()
        self.metrics.windows.labels("dead_letter").inc()
        letter = dead_letter_of(record, reason, error, topic=self.settings.dead_letter_topic)
        return Outgoing(letter.topic, letter.key, letter.value, letter.headers)

    def handle(self, records: Sequence[ConsumerRecord], now: float | None = None) -> list[Outgoing]:
        """Decode, score, alert: everything one batch of window records produces (no I/O)."""
        assert self.scorer is not None
        out: list[Outgoing] = []
        windows: list[FeatureWindow] = []
        sources: list[ConsumerRecord] = []
        for r in records:
            try:
                windows.append(decode_window(r.value or b""))
                sources.append(r)
            except Exception as exc:  # noqa: BLE001 - any bad input goes to the dead-letter topic
                out.append(self._dead_letter(r, UNDECODABLE, exc))
        if not windows:
            return out
        t0 = time.perf_counter()
        gated = self.scorer.gated
        outcomes = self.scorer.score(windows)
        self.metrics.batch_seconds.observe(time.perf_counter() - t0)
        self.metrics.gated.inc(self.scorer.gated - gated)
        self.metrics.batch_size.observe(len(windows))
        verdicts: list[Verdict] = []
        wall = utcnow()
        for r, w, o in zip(sources, windows, outcomes, strict=True):
            if isinstance(o, Rejected):
                err: BaseException = (
                    FeatureSpecMismatchError(o.detail) if o.reason == SPEC_MISMATCH else ValueError(o.detail)
                )
                out.append(self._dead_letter(r, o.reason, err))
                continue
            verdicts.append(o)
            self.metrics.verdicts.labels(o.decision).inc()
            self.metrics.windows.labels("insufficient" if o.decision == "insufficient_data" else "scored").inc()
            self.metrics.window_lag.observe(max(0.0, (wall - w.envelope.observed_at).total_seconds()))
            out.append(
                Outgoing(self.settings.verdicts_topic, o.envelope.key, o.model_dump_json().encode(), message_headers(o))
            )
        replays = self.engine.replays
        findings = self.engine.observe_many(verdicts, now)
        self.metrics.windows.labels("replay").inc(self.engine.replays - replays)
        out += [self._finding(f) for f in findings]
        out += self._state()
        return out

    def _state(self) -> list[Outgoing]:
        return [finding_message(self.settings.state_topic, f) for f in self.engine.drain_state()]

    def _handle_safely(self, records: Sequence[ConsumerRecord]) -> list[Outgoing]:
        """``handle``; should it raise on some input (a bug), only the windows that fail alone are dead-lettered.

        The batch is scored again in halves: the alert engine recognises windows it already saw (replays),
        so parts scored twice raise nothing twice.
        """
        out, failed = split_failures(records, self.handle)
        for record, exc in failed:
            log.error(
                "scoring %s[%d]@%d failed: dead-lettered (%s: %s)",
                record.topic, record.partition, record.offset, type(exc).__name__, exc, exc_info=exc,
            )  # fmt: skip
            self.metrics.internal_errors.inc()
            out.append(self._dead_letter(record, SCORER_ERROR, exc))
        return out

    def _finding(self, finding: DetectionFinding) -> Outgoing:
        self.metrics.alerts.labels(ACTIVITY_NAMES[finding.activity_id]).inc()
        self.metrics.open_alerts.set(len(self.engine.open_alerts))
        return finding_message(self.settings.alerts_topic, finding)

    async def _send(self, producer: AIOKafkaProducer, messages: Sequence[Outgoing]) -> None:
        futures = [await producer.send(m.topic, m.value, key=m.key, headers=m.headers) for m in messages]
        if futures:
            await asyncio.gather(*futures)
        for m in messages:
            kinds = {self.settings.verdicts_topic: "verdicts", self.settings.alerts_topic: "alerts"}
            kinds[self.settings.state_topic] = "state"
            self.produced[kinds.get(m.topic, "dead_letters")] += 1

    async def restore(self) -> int:
        """Rebuild open alerts and replay marks from the state topic."""
        latest = await latest_findings(self.kafka, self.settings.state_topic, self.settings.restore_timeout_s)
        opened = self.engine.restore(latest)
        self.metrics.restored_alerts.set(opened)
        self.metrics.open_alerts.set(len(self.engine.open_alerts))
        self.restore_needed, self.restored = False, True
        log.info("rebuilt %d open alerts from the latest findings of %d pods", opened, len(latest))
        return opened

    async def _recover(self, consumer: AIOKafkaConsumer, exc: BaseException, delay_s: float = 1.0) -> None:
        if isinstance(exc, KafkaError | OSError | TimeoutError):
            self.metrics.kafka_errors.inc()
            log.warning("Kafka produce/commit failed (%s): rebuild alert state, re-consume from committed offsets", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay_s)
        self.engine.reset()
        self.restore_needed = True
        try:
            assigned = consumer.assignment()
            if assigned:
                committed = await consumer.seek_to_committed(*assigned)
                fresh = [tp for tp, offset in committed.items() if not offset]
                if fresh:  # nothing committed yet: start over like auto_offset_reset=earliest
                    await consumer.seek_to_beginning(*fresh)
        except (KafkaError, OSError, TimeoutError) as again:
            log.warning("cannot rewind to the committed offsets yet (%s); retrying", again)
            raise

    async def _step(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        batch: dict[TopicPartition, list[ConsumerRecord]] = await consumer.getmany(
            timeout_ms=self.settings.poll_timeout_ms, max_records=self.settings.batch_max
        )
        records = [r for tp in sorted(batch, key=lambda t: t.partition) for r in batch[tp]]
        await self.progress.polled(consumer, len(records))
        if self.restore_needed:
            await self.restore()
        messages = self._handle_safely(records) if records else []
        try:
            expired = self.engine.expire()
        except Exception:  # a bug in quiet-timeout handling must not stop the scoring of windows
            log.exception("expiring quiet alerts failed; retried next poll")
            self.metrics.internal_errors.inc()
            expired = []
        if expired:
            messages += [self._finding(f) for f in expired] + self._state()
        if messages:
            await self._send(producer, messages)
        if batch:
            await consumer.commit({tp: recs[-1].offset + 1 for tp, recs in batch.items() if recs})
        if records:
            self.progress.processed(len(records))

    async def _connect(self) -> tuple[AIOKafkaProducer, AIOKafkaConsumer] | None:
        """Producer and subscribed consumer; retried with backoff while Kafka is unreachable (None: stopped)."""
        backoff = 0.5
        while not self._stop.is_set():
            producer = make_producer(self.kafka)
            consumer = make_consumer(self.kafka, group_id=self.settings.group_id)
            try:
                await producer.start()
                consumer.subscribe([self.settings.windows_topic], listener=_Assignments(self))
                await consumer.start()
                self.progress.waiting_for(None)
                return producer, consumer
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning("Kafka at %s unavailable (%s); retrying in %.1f s", self.kafka.bootstrap, exc, backoff)
                self.progress.waiting_for("Kafka")
                await producer.stop()
                await consumer.stop()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), backoff)
                backoff = min(backoff * 2, 10.0)
        return None

    async def _serve(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        """Poll, score, produce, commit until stopped; Kafka failures rewind, other failures are survived."""
        failures = 0
        while not self._stop.is_set():
            try:
                await self._step(consumer, producer)
                failures = 0
            except (KafkaError, OSError, TimeoutError) as exc:
                with contextlib.suppress(KafkaError, OSError, TimeoutError):
                    await self._recover(consumer, exc)
            except Exception as exc:  # a bug outside the scoring of windows: rewind, back off
                failures += 1
                self.metrics.internal_errors.inc()
                log.exception("scorer step failed (%d in a row); re-consuming from the committed offsets", failures)
                with contextlib.suppress(KafkaError, OSError, TimeoutError):
                    await self._recover(consumer, exc, delay_s=min(2.0**failures, 30.0))

    async def run(self, seconds: float | None = None) -> None:
        """Serve until ``stop()`` (or ``seconds``)."""
        loop = asyncio.get_running_loop()
        timer = loop.call_later(seconds, self.stop) if seconds is not None else None
        runner, self.http_port = await serve(
            probe_app(self.metrics.registry, self.health, self.ready), self.settings.http_host, self.settings.http_port
        )
        watcher: asyncio.Task[None] | None = None
        consumer: AIOKafkaConsumer | None = None
        producer: AIOKafkaProducer | None = None
        self.progress.start()
        try:
            self.progress.waiting_for("a servable model")
            if not await self._wait_for_models():
                return
            self.progress.waiting_for(None)
            watcher = asyncio.create_task(self._watch_models())
            connected = await self._connect()
            if connected is None:
                return
            producer, consumer = connected
            self.consuming = True
            log.info(
                "scorer consuming %s (group %s), serving %s",
                self.settings.windows_topic,
                self.settings.group_id,
                self.scorer.models.describe() if self.scorer else "-",
            )
            await self._serve(consumer, producer)
        finally:
            if self._stop.is_set():  # asked to stop; anything else ending the loop is a death /healthz reports
                self.progress.stop()
            self.consuming = False
            if timer is not None:
                timer.cancel()
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            if consumer is not None:
                await consumer.stop()
            if producer is not None:
                await producer.stop()
            await runner.cleanup()
