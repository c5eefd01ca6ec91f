"""Recent windows, verdicts and alerts per pod in Redis, bounded per pod and expiring.

Layout under the key prefix ``P`` (``{...}`` is a Redis Cluster hash tag: one pod's keys share a slot)::

    P pods                      zset  "ns/name" -> last update (ms, server clock)
    P ns:<ns>                   zset  "ns/name" -> last update, one per namespace
    P pod:{ns/name}:w           zset  window id -> time (end, else observed ms); at most max_windows_per_pod
    P pod:{ns/name}:wb          hash  window id -> FeatureWindow JSON
    P pod:{ns/name}:v / :vb     the same for verdicts (max_verdicts_per_pod)
    P pod:{ns/name}:latest      hash  {t, body}: the newest verdict
    P pod:{ns/name}:alert       string AlertState JSON (alert_ttl_s)
    P pod:{ns/name}:sc          zset  "<score>|<window id>" -> time: the last SPARK_POINTS scores (sparklines)
    P pod:{ns/name}:spark       string those scores, oldest first, comma-separated (one cheap read per pod)
    P meta:store                string: when the store was (re)built; its absence means Redis lost the data
    P meta:rebuilding           string: lock of the replica rebuilding the store (expires)

``ns`` and ``name`` are Kubernetes names (``PodKey.checked``): no ``/``, no braces, so keys cannot be confused.

Windows and verdicts of a pod expire ``window_ttl_s`` after its last message; trimming beyond the bound
drops the oldest entries with their bodies in the same Lua script (atomic).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeVar

from minerlens_core.schemas.details import ImageDetails, ModelDetails, ProcessDetails, ReasonDetails
from minerlens_core.schemas.envelope import Envelope
from minerlens_core.schemas.windows import FeatureWindow, Verdict
from pydantic import BaseModel, Field, ValidationError
from redis.asyncio import Redis

from minerlens_explainer.naming import PodKey
from minerlens_explainer.redis_link import RedisLink

M = TypeVar("M", bound=BaseModel)

_ADD = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local n = redis.call('ZCARD', KEYS[1])
local max = tonumber(ARGV[4])
if n > max then
  local old = redis.call('ZRANGE', KEYS[1], 0, n - max - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - max - 1)
  for i = 1, #old, 500 do
    redis.call('HDEL', KEYS[2], unpack(old, i, math.min(i + 499, #old)))
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return n
"""

_SCORE = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local scores = {}
for i, m in ipairs(members) do scores[i] = string.match(m, '^[^|]*') end
redis.call('SET', KEYS[2], table.concat(scores, ','), 'EX', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

SPARK_POINTS = 60
"""recent verdict scores kept per pod for the console's sparklines (``:sc``)"""

_LATEST = """
local t = redis.call('HGET', KEYS[1], 't')
if (not t) or tonumber(t) <= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 't', ARGV[1], 'body', ARGV[2])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class AlertState(BaseModel):
    """What the explainer keeps of a pod's alert: its id, windows and whether it is still open."""

    alert_id: str
    status: Literal["open", "closed"]
    pod_uid: str = ""
    window_ids: list[str] = Field(default_factory=list)
    trigger_window_id: str | None = Field(default=None, description="the window that raised the alert")
    severity: str | None = None
    opened_at: datetime | None = None
    updated_at: datetime
    first_seen: datetime | None = Field(default=None, description="start of the first window over the threshold")
    last_seen: datetime | None = Field(default=None, description="end of the alert's latest window")
    score: float | None = Field(default=None, description="peak score")
    threshold: float | None = None
    process: ProcessDetails | None = Field(default=None, description="the process of the highest-scoring window")
    image: ImageDetails | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    reasons: list[ReasonDetails] = Field(default_factory=list)
    model: ModelDetails | None = None
    resolution: str | None = None


class PodRecord(BaseModel):
    """A pod as the store knows it: identity, last update, newest verdict and alert."""

    namespace: str
    pod: str
    pod_uid: str = ""
    node: str = ""
    last_seen: datetime
    latest: Verdict | None = None
    alert: AlertState | None = None

    @property
    def alerting(self) -> bool:
        return self.alert is not None and self.alert.status == "open"


@dataclass(frozen=True)
class PodRow:
    """A pod as the console's list shows it (``PodStore.pod_rows``)."""

    key: PodKey
    last_seen: datetime
    score: float | None
    threshold: float | None
    decision: str
    alert: AlertState | None
    scores: list[float]
    """the last verdict scores, oldest first"""

    @classmethod
    def of(cls, key: PodKey, last_ms: float, latest: object, alert: object, spark: object) -> PodRow:
        doc: object = None
        if isinstance(latest, bytes | str):
            with contextlib.suppress(ValueError):
                doc = json.loads(latest)
        v = doc if isinstance(doc, dict) else {}
        return cls(
            key, datetime.fromtimestamp(last_ms / 1000, UTC), _number(v.get("score")), _number(v.get("threshold")),
            str(v.get("decision", "-"))[:32], parse_stored(AlertState, alert),
            [_score_of(x) for x in text_of(spark).split(",")] if spark else [],
        )  # fmt: skip


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def order_of(envelope: Envelope, end_ns: int | None) -> float:
    """Sort key of a window/verdict in its pod: the window end (ms) when known, else when it was built."""
    return end_ns / 1e6 if end_ns is not None else float(_ms(envelope.observed_at))


class PodStore:
    def __init__(
        self, link: RedisLink, prefix: str, *, max_windows: int, max_verdicts: int, ttl_s: int, alert_ttl_s: int,
        max_pods: int = 10_000,
    ) -> None:  # fmt: skip
        self.link = link
        self.prefix = prefix
        self.max_windows = max_windows
        self.max_verdicts = max_verdicts
        self.ttl_s = ttl_s
        self.alert_ttl_s = alert_ttl_s
        self.max_pods = max_pods
        self._add = link.client.register_script(_ADD)
        self._latest = link.client.register_script(_LATEST)
        self._score = link.client.register_script(_SCORE)

    # ---- keys --------------------------------------------------------------------------------------

    def _k(self, pod: PodKey, suffix: str) -> str:
        return f"{self.prefix}pod:{{{pod}}}:{suffix}"

    @property
    def _pods(self) -> str:
        return f"{self.prefix}pods"

    def _ns(self, namespace: str) -> str:
        return f"{self.prefix}ns:{namespace}"

    async def _touch(self, r: Redis, pod: PodKey) -> None:
        now = int(time.time() * 1000)
        async with r.pipeline(transaction=False) as p:
            p.zadd(self._pods, {str(pod): now})
            p.zadd(self._ns(pod.namespace), {str(pod): now})
            await p.execute()

    # ---- writes ------------------------------------------------------------------------------------

    async def add_window(self, pod: PodKey, window: FeatureWindow) -> None:
        body = window.model_dump_json()
        order = order_of(window.envelope, window.end_ns)

        async def run(r: Redis) -> None:
            keys = [self._k(pod, "w"), self._k(pod, "wb")]
            await self._add(keys=keys, args=[window.window_id, order, body, self.max_windows, self.ttl_s], client=r)
            await self._touch(r, pod)

        await self.link.call(run)

    async def add_verdict(self, pod: PodKey, verdict: Verdict) -> None:
        body = verdict.model_dump_json()
        order = order_of(verdict.envelope, verdict.end_ns)

        async def run(r: Redis) -> None:
            keys = [self._k(pod, "v"), self._k(pod, "vb")]
            await self._add(keys=keys, args=[verdict.window_id, order, body, self.max_verdicts, self.ttl_s], client=r)
            await self._latest(keys=[self._k(pod, "latest")], args=[order, body, self.ttl_s], client=r)
            if verdict.score is not None:
                member = f"{verdict.score:.4f}|{verdict.window_id}"
                await self._score(
                    keys=[self._k(pod, "sc"), self._k(pod, "spark")],
                    args=[order, member, SPARK_POINTS, self.ttl_s],
                    client=r,
                )
            await self._touch(r, pod)

        await self.link.call(run)

    async def set_alert(self, pod: PodKey, alert: AlertState) -> None:
        async def run(r: Redis) -> None:
            await r.set(self._k(pod, "alert"), alert.model_dump_json(), ex=self.alert_ttl_s)
            await self._touch(r, pod)

        await self.link.call(run)

    # ---- store identity (rebuild after a data loss) ----------------------------------------------------

    @property
    def _marker(self) -> str:
        return f"{self.prefix}meta:store"

    async def marker(self) -> str | None:
        """When the store was built, or None: this Redis lost (or never had) the data."""
        raw = await self.link.call(lambda r: r.get(self._marker))
        return None if raw is None else text_of(raw)

    async def set_marker(self, value: str) -> None:
        await self.link.call(lambda r: r.set(self._marker, value))

    async def lock_rebuild(self, owner: str, ttl_ms: int) -> bool:
        """Take the rebuild lock (one replica rebuilds at a time); False when another one holds it."""
        return bool(await self.link.call(lambda r: r.set(f"{self.prefix}meta:rebuilding", owner, nx=True, px=ttl_ms)))

    async def unlock_rebuild(self, owner: str) -> None:
        key = f"{self.prefix}meta:rebuilding"

        async def run(r: Redis) -> None:
            raw = await r.get(key)
            if raw is not None and text_of(raw) == owner:
                await r.delete(key)

        await self.link.call(run)

    async def alert(self, pod: PodKey) -> AlertState | None:
        raw = await self.link.call(lambda r: r.get(self._k(pod, "alert")))
        return parse_stored(AlertState, raw)

    # ---- reads -------------------------------------------------------------------------------------

    async def _listed(self, r: Redis, namespace: str | None) -> tuple[list[tuple[PodKey, float]], bool]:
        """(pod, last update ms) of the pods updated within the TTL, newest first; and truncated?"""
        index = self._ns(namespace) if namespace else self._pods
        horizon = int(time.time() * 1000) - self.ttl_s * 1000
        await r.zremrangebyscore(index, "-inf", f"({horizon}")
        found = await r.zrevrangebyscore(index, "+inf", horizon, start=0, num=self.max_pods + 1, withscores=True)
        parsed = [(PodKey.parse(text_of(m[0])), float(m[1])) for m in found[: self.max_pods]]
        return [(k, t) for k, t in parsed if k is not None], len(found) > self.max_pods  # older unchecked keys: skipped

    async def pods(self, namespace: str | None = None) -> tuple[list[PodRecord], bool]:
        """Pods updated within the TTL (newest first) with their newest verdict and alert; and truncated?"""

        async def run(r: Redis) -> tuple[list[PodRecord], bool]:
            listed, truncated = await self._listed(r, namespace)
            async with r.pipeline(transaction=False) as p:
                for k, _ in listed:
                    p.hget(self._k(k, "latest"), "body")
                    p.get(self._k(k, "alert"))
                raw = await p.execute()
            return [self._record(k, t, raw[2 * i], raw[2 * i + 1]) for i, (k, t) in enumerate(listed)], truncated

        return await self.link.call(run)

    async def pod_rows(self, namespace: str | None, offset: int, limit: int) -> tuple[list[PodRow], int, bool]:
        """One page of the pod list for the console: the newest verdict's score, threshold and decision (read
        without validating the whole verdict), the alert and the last ``SPARK_POINTS`` scores; the number of
        pods, and truncated?"""

        async def run(r: Redis) -> tuple[list[PodRow], int, bool]:
            listed, truncated = await self._listed(r, namespace)
            page = listed[offset : offset + limit]
            async with r.pipeline(transaction=False) as p:
                for k, _ in page:
                    p.hget(self._k(k, "latest"), "body")
                    p.get(self._k(k, "alert"))
                    p.get(self._k(k, "spark"))
                raw = await p.execute()
            rows = [PodRow.of(k, t, raw[3 * i], raw[3 * i + 1], raw[3 * i + 2]) for i, (k, t) in enumerate(page)]
            return rows, len(listed), truncated

        return await self.link.call(run)

    async def open_alerts(self) -> list[tuple[PodKey, AlertState]]:
        """The pods with an open alert (their alert state only), newest pod first."""

        async def run(r: Redis) -> list[tuple[PodKey, AlertState]]:
            listed, _ = await self._listed(r, None)
            async with r.pipeline(transaction=False) as p:
                for k, _ in listed:
                    p.get(self._k(k, "alert"))
                raw = await p.execute()
            alerts = [(k, parse_stored(AlertState, a)) for (k, _), a in zip(listed, raw, strict=True) if a]
            return [(k, a) for k, a in alerts if a is not None and a.status == "open"]

        return await self.link.call(run)

    def _record(self, pod: PodKey, last_ms: float, latest_raw: object, alert_raw: object) -> PodRecord:
        latest = parse_stored(Verdict, latest_raw)
        env = latest.envelope if latest else None
        return PodRecord(
            namespace=pod.namespace,
            pod=pod.name,
            pod_uid=env.pod.uid if env and env.pod else "",
            node=env.node if env else "",
            last_seen=datetime.fromtimestamp(last_ms / 1000, UTC),
            latest=latest,
            alert=parse_stored(AlertState, alert_raw),
        )

    async def pod(self, pod: PodKey) -> PodRecord | None:
        async def run(r: Redis) -> PodRecord | None:
            async with r.pipeline(transaction=False) as p:
                p.zscore(self._pods, str(pod))
                p.hget(self._k(pod, "latest"), "body")
                p.get(self._k(pod, "alert"))
                p.exists(self._k(pod, "w"))
                last, latest, alert, has_windows = await p.execute()
            if last is None or (latest is None and alert is None and not has_windows):
                return None
            return self._record(pod, float(last), latest, alert)

        return await self.link.call(run)

    async def verdicts(self, pod: PodKey, limit: int) -> list[Verdict]:
        """The newest ``limit`` verdicts of a pod, newest first."""
        return await self._bodies(pod, "v", "vb", limit, Verdict)

    async def windows(self, pod: PodKey, limit: int) -> list[FeatureWindow]:
        return await self._bodies(pod, "w", "wb", limit, FeatureWindow)

    async def _bodies(self, pod: PodKey, zkey: str, hkey: str, limit: int, model: type[M]) -> list[M]:
        async def run(r: Redis) -> list[M]:
            ids = [text_of(i) for i in await r.zrevrange(self._k(pod, zkey), 0, limit - 1)]
            if not ids:
                return []
            raw = await r.hmget(self._k(pod, hkey), ids)
            return [x for x in (parse_stored(model, b) for b in raw) if x is not None]

        return await self.link.call(run)

    async def window(self, pod: PodKey, window_id: str) -> FeatureWindow | None:
        raw = await self.link.call(lambda r: r.hget(self._k(pod, "wb"), window_id))
        return parse_stored(FeatureWindow, raw)

    async def window_ids(self, pod: PodKey) -> list[str]:
        """Ids of the stored windows of a pod, newest first."""
        ids = await self.link.call(lambda r: r.zrevrange(self._k(pod, "w"), 0, -1))
        return [text_of(i) for i in ids]

    async def verdict_scores(self, pod: PodKey, window_ids: Sequence[str]) -> dict[str, float]:
        """Score of the verdict of each of ``window_ids`` that has one with a score."""
        if not window_ids:
            return {}
        raw = await self.link.call(lambda r: r.hmget(self._k(pod, "vb"), list(window_ids)))
        out: dict[str, float] = {}
        for wid, body in zip(window_ids, raw, strict=True):
            v = parse_stored(Verdict, body)
            if v is not None and v.score is not None:
                out[wid] = v.score
        return out


def _score_of(member: object) -> float:
    head = text_of(member).partition("|")[0]
    try:
        return min(1.0, max(0.0, float(head)))
    except ValueError:
        return 0.0


def text_of(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def parse_stored(model: type[M], raw: object) -> M | None:
    """A stored body, or None when absent or unreadable (written by another version: ignored, expires)."""
    if not isinstance(raw, bytes | str):
        return None
    try:
        return model.model_validate_json(raw)
    except ValidationError:
        return None
