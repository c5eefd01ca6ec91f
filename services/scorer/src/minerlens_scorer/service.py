"""The Kafka adapter: windows topic in; verdicts, OCSF alerts and dead letters out. Logic lives elsewhere.

The loop is core's ``ConsumerLoop`` (``minerlens_core.consuming``). Per poll (up to ``batch_max`` windows):
decode (what does not decode is dead-lettered) -> ``Scorer.score`` (one ONNX call per model) ->
``AlertEngine`` -> produce verdicts (keyed by pod uid), findings (keyed by pod uid) and dead letters ->
wait for every acknowledgement -> commit the consumed offsets. A crash before the commit re-consumes the
batch; the alert engine recognises the replayed windows, so no alert is raised twice.

Alongside, the latest state of every alert that changed in the batch goes to the state topic (compacted,
keyed by pod uid; the finding JSON with the full alert state in ``unmapped.minerlens``). On every partition
assignment (start, rebalance) the open alerts and replay marks are rebuilt from the latest state per pod.
When a poll fails (producing, restoring, a bug), the engine is reset, rebuilt the same way, and the poll
is consumed again from the committed offsets after a backoff.

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

from aiokafka import AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord
from minerlens_core.consuming import KAFKA_ERRORS, ConsumerLoop, LoopHooks, Poll
from minerlens_core.errors import FeatureSpecMismatchError
from minerlens_core.http_probes import probe_app, serve
from minerlens_core.kafka import (
    ConsumerProgress,
    Headers,
    SourceRecord,
    dead_letter_of,
    message_headers,
    split_failures,
)
from minerlens_core.retrying import Backoff
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
from minerlens_scorer.suppression_feed import SuppressionFeed

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
        self.suppressions = SuppressionFeed(kafka, settings.suppressions_topic)
        self.engine = AlertEngine(
            self.policy, FindingFactory(self.policy, product_version, settings.explain_base_url),
            suppressor=self.suppressions.rules.match,
            on_suppressed=lambda rule_id: self.metrics.suppressed.labels(rule_id).inc(),
        )  # fmt: skip
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
        self.http_port: int | None = None
        self.progress = ConsumerProgress("scorer consumer", settings.stall_timeout_s)
        self.produced: dict[str, int] = {"verdicts": 0, "alerts": 0, "state": 0, "dead_letters": 0}
        self._stop = asyncio.Event()
        hooks = LoopHooks(
            connected=self._connected,
            dead_lettered=self._dead_lettered,
            poll_failed=self._poll_failed,
            commit_failed=lambda _: self.metrics.kafka_errors.inc(),
        )
        self._loop: ConsumerLoop[FeatureWindow] = ConsumerLoop(
            kafka, [settings.windows_topic], group_id=settings.group_id, decode=_decode, handle=self._handle_poll,
            progress=self.progress, poll_timeout_ms=settings.poll_timeout_ms, max_records=settings.batch_max,
            undecodable=UNDECODABLE, dead_letter_topic=settings.dead_letter_topic, handle_empty=True,
            listener=_Assignments(self), connect_backoff=Backoff(initial_s=0.5, max_s=10.0),
            retry_backoff=Backoff(initial_s=1.0, max_s=30.0), hooks=hooks,
        )  # fmt: skip

    @property
    def consuming(self) -> bool:
        return self._loop.consuming

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
            "suppression_rules": len(self.suppressions.rules),
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

    async def _wait_for_rules(self) -> None:
        """Read the suppression rules before scoring (bounded: a topic that cannot be read does not stop it)."""
        self.progress.waiting_for("suppression rules")
        waited = asyncio.create_task(self.suppressions.caught_up.wait())
        stopping = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait({waited, stopping}, timeout=self.settings.restore_timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        for t in (waited, stopping):
            t.cancel()
        if not done:
            log.warning("suppression rules not read within %.0f s: scoring without them meanwhile",
                        self.settings.restore_timeout_s)  # fmt: skip

    # ---- data ----------------------------------------------------------------------------------------
    def _count_dead_letter(self, reason: str) -> None:
        self.metrics.dead_letters.labels(reason).inc()
        self.metrics.windows.labels("dead_letter").inc()

    def _dead_letter(self, record: ConsumerRecord, reason: str, error: BaseException | None) -> Outgoing:
        self._count_dead_letter(reason)
        letter = dead_letter_of(record, reason, error, topic=self.settings.dead_letter_topic)
        return Outgoing(letter.topic, letter.key, letter.value, letter.headers)

    def _dead_lettered(self, record: SourceRecord, reason: str, error: BaseException | None) -> None:
        """A window the loop could not decode was dead-lettered."""
        self._count_dead_letter(reason)
        self.produced["dead_letters"] += 1

    def handle(self, records: Sequence[ConsumerRecord], now: float | None = None) -> list[Outgoing]:
        """Decode, score, alert: everything one batch of window records produces (no I/O)."""
        out: list[Outgoing] = []
        items: list[tuple[ConsumerRecord, FeatureWindow]] = []
        for r in records:
            try:
                items.append((r, _decode(r)))
            except Exception as exc:  # noqa: BLE001 - any bad input goes to the dead-letter topic
                out.append(self._dead_letter(r, UNDECODABLE, exc))
        return out + self._score(items, now)

    def _score(self, items: Sequence[tuple[ConsumerRecord, FeatureWindow]], now: float | None = None) -> list[Outgoing]:
        """Score decoded windows and feed the alert engine: verdicts, findings, state and dead letters."""
        assert self.scorer is not None
        out: list[Outgoing] = []
        if not items:
            return out
        windows = [w for _, w in items]
        t0 = time.perf_counter()
        gated = self.scorer.gated
        outcomes = self.scorer.score(windows)
        self.metrics.batch_seconds.observe(time.perf_counter() - t0)
        self.metrics.gated.inc(self.scorer.gated - gated)
        self.metrics.batch_size.observe(len(windows))
        verdicts: list[Verdict] = []
        wall = utcnow()
        for (r, w), o in zip(items, outcomes, strict=True):
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

    def _score_safely(self, items: Sequence[tuple[ConsumerRecord, FeatureWindow]]) -> list[Outgoing]:
        """``_score``; should it raise on some input (a bug), only the windows that fail alone are dead-lettered.

        The batch is scored again in halves: the alert engine recognises windows it already saw (replays),
        so parts scored twice raise nothing twice.
        """
        out, failed = split_failures(items, self._score)
        for (record, _), exc in failed:
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

    def _connected(self) -> None:
        log.info(
            "scorer consuming %s (group %s), serving %s",
            self.settings.windows_topic,
            self.settings.group_id,
            self.scorer.models.describe() if self.scorer else "-",
        )

    async def _handle_poll(self, poll: Poll[FeatureWindow]) -> None:
        """Restore if assigned, score the decoded windows, expire quiet alerts (every poll), produce."""
        if self.restore_needed:
            await self.restore()
        messages = self._score_safely(poll.items) if poll.items else []
        try:
            expired = self.engine.expire()
        except Exception:  # a bug in quiet-timeout handling must not stop the scoring of windows
            log.exception("expiring quiet alerts failed; retried next poll")
            self.metrics.internal_errors.inc()
            expired = []
        if expired:
            messages += [self._finding(f) for f in expired] + self._state()
        if messages:
            await self._send(poll.producer, messages)

    def _poll_failed(self, exc: BaseException) -> None:
        """The loop rewound the poll: rebuild the alert state before it is scored again."""
        if isinstance(exc, KAFKA_ERRORS):
            self.metrics.kafka_errors.inc()
            log.warning("Kafka produce/commit failed (%s): rebuild alert state, re-consume from committed offsets", exc)
        else:  # a bug outside the scoring of windows (the loop logged it)
            self.metrics.internal_errors.inc()
        self.engine.reset()
        self.restore_needed = True

    async def run(self, seconds: float | None = None) -> None:
        """Serve until ``stop()`` (or ``seconds``)."""
        loop = asyncio.get_running_loop()
        timer = loop.call_later(seconds, self.stop) if seconds is not None else None
        runner, self.http_port = await serve(
            probe_app(self.metrics.registry, self.health, self.ready), self.settings.http_host, self.settings.http_port
        )
        watcher: asyncio.Task[None] | None = None
        feed = (
            asyncio.create_task(self.suppressions.run(self._stop), name="suppressions")
            if self.settings.suppressions_topic
            else None
        )
        self.progress.start()
        try:
            self.progress.waiting_for("a servable model")
            if not await self._wait_for_models():
                return
            if feed is not None:
                await self._wait_for_rules()
            self.progress.waiting_for(None)
            watcher = asyncio.create_task(self._watch_models())
            await self._loop.run(self._stop)
        finally:
            if self._stop.is_set():  # asked to stop; anything else ending the loop is a death /healthz reports
                self.progress.stop()
            if timer is not None:
                timer.cancel()
            for task in (watcher, feed):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await runner.cleanup()


def _decode(record: ConsumerRecord) -> FeatureWindow:
    return decode_window(record.value or b"")
