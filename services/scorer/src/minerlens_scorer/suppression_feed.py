"""Follow the suppressions topic: the rules in force, kept in memory for the alert engine.

The topic is compacted and keyed by rule id (``minerlens_core.topics.SUPPRESSIONS``); a value is a
``SuppressionRule`` JSON, an empty value (tombstone) deletes the rule. The feed reads every partition from
the beginning without a consumer group (every scorer replica needs every rule) and keeps following it, so
a rule created in the console silences the next window of its pods. ``caught_up`` is set once every rule
that was on the topic when the feed started is applied (the scorer waits for it before scoring, so a restart
does not raise alerts that rules silence). Undecodable values are logged and
skipped (the previous version of that rule stays). Kafka failures are retried with backoff; rules already
read stay in force meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer
from minerlens_core.kafka import make_consumer
from minerlens_core.retrying import Backoff
from minerlens_core.settings import KafkaSettings
from minerlens_core.suppressions import RuleSet, SuppressionRule
from pydantic import ValidationError

log = logging.getLogger(__name__)


def apply(rules: RuleSet, key: bytes | None, value: bytes | None) -> str:
    """Apply one record of the topic; what it did (``put``, ``deleted``, ``ignored``)."""
    if not value:
        if key is None:
            return "ignored"
        return "deleted" if rules.remove(key.decode(errors="replace")) is not None else "ignored"
    try:
        rule = SuppressionRule.model_validate_json(value)
    except (ValidationError, ValueError) as exc:
        log.warning("suppression record %r is not a rule, ignored: %s", key, str(exc)[:200])
        return "ignored"
    try:
        rules.put(rule)
    except ValueError as exc:
        log.error("suppression %s not applied: %s", rule.id, exc)
        return "ignored"
    return "put"


class SuppressionFeed:
    def __init__(self, kafka: KafkaSettings, topic: str, rules: RuleSet | None = None) -> None:
        self.kafka = kafka
        self.topic = topic
        self.rules = rules if rules is not None else RuleSet()
        self.applied = 0
        self.caught_up = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        delays = Backoff(initial_s=0.5, max_s=10.0).delays()
        while not stop.is_set():
            try:
                await self._follow(stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Kafka down or a bug: keep the rules, retry
                delay = next(delays)
                log.warning("suppressions feed: %s; retrying in %.1f s", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    async def _follow(self, stop: asyncio.Event) -> None:
        consumer = make_consumer(self.kafka, self.topic, group_id=None)
        try:  # stopped however it ends, a cancellation during start() included
            await consumer.start()
            end: dict[Any, int] | None = None
            while not stop.is_set():
                got = await consumer.getmany(timeout_ms=250, max_records=1000)
                for records in got.values():
                    for r in records:
                        apply(self.rules, r.key, r.value)
                        self.applied += 1
                if not self.caught_up.is_set():
                    end = await self._check_caught_up(consumer, end)
        finally:
            await consumer.stop()

    async def _check_caught_up(self, consumer: AIOKafkaConsumer, end: dict[Any, int] | None) -> dict[Any, int] | None:
        """Set ``caught_up`` when the topic's end at start is reached (or there is no such topic: no rules)."""
        tps = consumer.assignment()
        if not tps:
            if self.topic not in await consumer.topics():
                self.caught_up.set()
            return end
        if end is None:
            end = await consumer.end_offsets(list(tps))
        if all([await consumer.position(tp) >= end[tp] for tp in tps]):
            log.info("suppressions: %d rules in force from %s", len(self.rules), self.topic)
            self.caught_up.set()
        return end
