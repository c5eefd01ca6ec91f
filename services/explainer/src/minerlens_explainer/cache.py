"""Compute-once caching of explanations in Redis.

``SingleFlight.get`` returns the cached bytes of ``key`` or computes them exactly once:

* in this process, concurrent callers of one key share one task (``coalesced``);
* across replicas, the computing one holds ``<key>:lock`` (``SET NX PX``, released only by its owner);
  the others poll the cache until the value appears (``hit``) or the lock vanishes without a value
  (then they try to take it), and compute themselves after ``wait_timeout_s``;
* when Redis is down (or fails mid-way) the value is computed (once) and returned uncached (``bypass``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from redis.asyncio import Redis

from minerlens_explainer.redis_link import RedisLink, RedisUnavailable

log = logging.getLogger(__name__)

CacheStatus = Literal["hit", "miss", "coalesced", "bypass"]
Compute = Callable[[], Awaitable[bytes]]

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class SingleFlight:
    def __init__(
        self, link: RedisLink, *, ttl_s: int, lock_ttl_ms: int, wait_timeout_s: float,
        on_status: Callable[[CacheStatus], None] | None = None,
    ) -> None:  # fmt: skip
        self.link = link
        self.ttl_s = ttl_s
        self.lock_ttl_ms = lock_ttl_ms
        self.wait_timeout_s = wait_timeout_s
        self.on_status = on_status
        self._inflight: dict[str, asyncio.Task[tuple[bytes, CacheStatus]]] = {}
        self._unlock = link.client.register_script(_UNLOCK)

    async def get(self, key: str, compute: Compute) -> tuple[bytes, CacheStatus]:
        task = self._inflight.get(key)
        if task is not None:
            value, status = await asyncio.shield(task)
            status = "coalesced" if status != "bypass" else status
        else:
            task = asyncio.create_task(self._resolve(key, compute))
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._done(key, t))
            value, status = await asyncio.shield(task)
        if self.on_status is not None:
            self.on_status(status)
        return value, status

    def _done(self, key: str, task: asyncio.Task[tuple[bytes, CacheStatus]]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone (clients disconnected)

    async def _resolve(self, key: str, compute: Compute) -> tuple[bytes, CacheStatus]:
        computed: list[bytes] = []

        async def once() -> bytes:
            if not computed:
                computed.append(await compute())
            return computed[0]

        try:
            return await self._through_redis(key, once)
        except RedisUnavailable:
            return await once(), "bypass"

    async def _through_redis(self, key: str, compute: Compute) -> tuple[bytes, CacheStatus]:
        lock = f"{key}:lock"
        deadline = time.monotonic() + self.wait_timeout_s
        delay = 0.005
        while True:
            cached = await self._get(key)
            if cached is not None:
                return cached, "hit"
            token = secrets.token_hex(16)
            if await self._acquire(lock, token):
                try:
                    value = await compute()
                    await self._store(key, value)
                    return value, "miss"
                finally:
                    await self._release(lock, token)
            # another replica computes it: wait for its value, or for its lock to go away
            while time.monotonic() < deadline:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.1)
                cached = await self._get(key)
                if cached is not None:
                    return cached, "hit"
                if not await self.link.call(lambda r: r.exists(lock)):
                    break
            else:
                log.warning("waited %.1fs for %s, computing it here", self.wait_timeout_s, key)
                value = await compute()
                await self._store(key, value)
                return value, "miss"

    async def _store(self, key: str, value: bytes) -> None:
        async def put(r: Redis) -> None:
            await r.set(key, value, ex=self.ttl_s)

        await self.link.call(put)

    async def _get(self, key: str) -> bytes | None:
        value = await self.link.call(lambda r: r.get(key))
        return value.encode() if isinstance(value, str) else value

    async def _acquire(self, lock: str, token: str) -> bool:
        return bool(await self.link.call(lambda r: r.set(lock, token, nx=True, px=self.lock_ttl_ms)))

    async def _release(self, lock: str, token: str) -> None:
        with contextlib.suppress(RedisUnavailable):  # else the lock expires by itself
            await self.link.call(lambda r: self._unlock(keys=[lock], args=[token], client=r))

    async def purge(self, pattern: str) -> int:
        """Delete the keys matching ``pattern`` (SCAN + UNLINK, never KEYS); how many were deleted."""

        async def run(r: Redis) -> int:
            deleted = 0
            batch: list[bytes] = []
            async for k in r.scan_iter(match=pattern, count=500):
                batch.append(k)
                if len(batch) >= 500:
                    deleted += await r.unlink(*batch)
                    batch = []
            if batch:
                deleted += await r.unlink(*batch)
            return deleted

        return await self.link.call(run)
