"""Suppression rules and operator feedback in Redis: durable (no TTL; the project's Redis persists to disk).

Layout under the key prefix ``P``::

    P suppressions        hash  rule id -> SuppressionRule JSON (expired rules stay listed until deleted)
    P feedback            hash  feedback id -> Feedback JSON
    P feedback:t          zset  feedback id -> when (ms)
    P feedback:a:<alert>  set   feedback ids of one alert
    P feedback:w:<id>     hash  window id -> FeatureWindow JSON: the judged windows, pinned when the judgement
                                is stored (the pod store's copies expire; these stay for retraining)
"""

from __future__ import annotations

from collections.abc import Mapping

from minerlens_core.suppressions import MAX_RULES, SuppressionRule
from redis.asyncio import Redis

from minerlens_explainer.operator_models import Feedback
from minerlens_explainer.redis_link import RedisLink
from minerlens_explainer.store import parse_stored, text_of

MAX_FEEDBACK_LISTED = 1000
MAX_PINNED_WINDOWS = 64
"""windows pinned per judgement (an alert's windows over the threshold are bounded by the scorer's k-of-n)"""


class TooManyRules(ValueError):
    pass


class OperatorStore:
    def __init__(self, link: RedisLink, prefix: str) -> None:
        self.link = link
        self.prefix = prefix

    @property
    def _rules(self) -> str:
        return f"{self.prefix}suppressions"

    # ---- suppressions --------------------------------------------------------------------------------

    async def suppressions(self) -> list[SuppressionRule]:
        raw = await self.link.call(lambda r: r.hvals(self._rules))
        rules = [x for x in (parse_stored(SuppressionRule, b) for b in raw) if x is not None]
        return sorted(rules, key=lambda r: r.created_at, reverse=True)

    async def suppression(self, rule_id: str) -> SuppressionRule | None:
        return parse_stored(SuppressionRule, await self.link.call(lambda r: r.hget(self._rules, rule_id)))

    async def add_suppression(self, rule: SuppressionRule) -> bool:
        """Store a new rule; False when its id is taken. ``TooManyRules`` beyond ``MAX_RULES``."""

        async def run(r: Redis) -> bool:
            if await r.hlen(self._rules) >= MAX_RULES:
                msg = f"at most {MAX_RULES} suppression rules; delete expired ones"
                raise TooManyRules(msg)
            return bool(await r.hsetnx(self._rules, rule.id, rule.model_dump_json()))

        return await self.link.call(run)

    async def delete_suppression(self, rule_id: str) -> bool:
        return bool(await self.link.call(lambda r: r.hdel(self._rules, rule_id)))

    # ---- feedback ------------------------------------------------------------------------------------

    async def add_feedback(self, fb: Feedback, windows: Mapping[str, str] | None = None) -> None:
        """Store a judgement and, pinned with it, the JSON of the windows it judges (``window id -> JSON``)."""

        async def run(r: Redis) -> None:
            async with r.pipeline(transaction=True) as p:
                p.hset(f"{self.prefix}feedback", fb.id, fb.model_dump_json())
                if windows:
                    # redis' stubs want a Mapping of the wider key/value union (dict is invariant)
                    p.hset(f"{self.prefix}feedback:w:{fb.id}", mapping=dict(windows))  # type: ignore[arg-type]
                p.zadd(f"{self.prefix}feedback:t", {fb.id: int(fb.at.timestamp() * 1000)})
                if fb.alert_id:
                    p.sadd(f"{self.prefix}feedback:a:{fb.alert_id}", fb.id)
                await p.execute()

        await self.link.call(run)

    async def remove_feedback(self, fb: Feedback) -> None:
        """Undo ``add_feedback`` (its audit record could not be written)."""

        async def run(r: Redis) -> None:
            async with r.pipeline(transaction=True) as p:
                p.hdel(f"{self.prefix}feedback", fb.id)
                p.delete(f"{self.prefix}feedback:w:{fb.id}")
                p.zrem(f"{self.prefix}feedback:t", fb.id)
                if fb.alert_id:
                    p.srem(f"{self.prefix}feedback:a:{fb.alert_id}", fb.id)
                await p.execute()

        await self.link.call(run)

    async def feedback(self, alert_id: str | None = None, limit: int = 100) -> list[Feedback]:
        """Newest first: all feedback, or one alert's."""
        limit = max(1, min(limit, MAX_FEEDBACK_LISTED))

        async def run(r: Redis) -> list[Feedback]:
            if alert_id is not None:
                ids = [text_of(i) for i in await r.smembers(f"{self.prefix}feedback:a:{alert_id}")]
            else:
                ids = [text_of(i) for i in await r.zrevrange(f"{self.prefix}feedback:t", 0, limit - 1)]
            if not ids:
                return []
            raw = await r.hmget(f"{self.prefix}feedback", ids)
            items = [x for x in (parse_stored(Feedback, b) for b in raw) if x is not None]
            return sorted(items, key=lambda f: f.at, reverse=True)[:limit]

        return await self.link.call(run)

    async def pinned_windows(self, feedback_id: str) -> dict[str, bytes | str]:
        """The windows pinned with a judgement: window id -> stored JSON."""
        raw = await self.link.call(lambda r: r.hgetall(f"{self.prefix}feedback:w:{feedback_id}"))
        return {text_of(k): v for k, v in raw.items()}
