"""The one Redis connection of the service, with short timeouts and a breaker.

Every Redis call of the explainer goes through ``RedisLink.call``: a failure (refused, reset, timeout)
marks Redis down for ``retry_s`` seconds, during which callers skip Redis at once instead of paying a
timeout per request (the API answers uncached, ``X-Minerlens-Cache: bypass``). A command that Redis
refuses for what it is (an error reply, not an outage) raises ``RedisCommandError`` and leaves the
breaker closed: retrying it would not help, the caller drops (dead-letters) that one write.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ReadOnlyError, RedisError, ResponseError

log = logging.getLogger(__name__)
T = TypeVar("T")


class RedisUnavailable(Exception):
    """Redis did not answer (or is marked down); the caller degrades."""


class RedisCommandError(RedisUnavailable):
    """Redis answered this one command with an error (not an outage): retrying it would fail again."""


_OUTAGE_REPLIES = ("OOM", "READONLY", "LOADING", "MASTERDOWN", "BUSY", "NOREPLICAS", "CLUSTERDOWN", "TRYAGAIN")
"""Error replies that mean Redis cannot serve right now (wait), not that the command is wrong."""


class RedisLink:
    def __init__(self, url: str, timeout_s: float = 0.5, retry_s: float = 2.0) -> None:
        self.url = url
        self.retry_s = retry_s
        self.client: Redis = Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            decode_responses=False,
            health_check_interval=0,
        )
        self._down_until = 0.0
        self._down = False
        self.last_error = ""
        self.on_change: Callable[[bool], None] | None = None

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    @property
    def up(self) -> bool:
        return not self._down

    def _failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.retry_s
        self.last_error = f"{type(exc).__name__}: {exc}"
        if not self._down:
            log.warning("Redis %s unavailable, answering uncached: %s", self.url, self.last_error)
            self._set(down=True)

    def _ok(self) -> None:
        if self._down:
            log.info("Redis %s is back", self.url)
            self._set(down=False)

    def _set(self, *, down: bool) -> None:
        self._down = down
        if self.on_change is not None:
            self.on_change(not down)

    async def call(self, fn: Callable[[Redis], Awaitable[T]], *, force: bool = False) -> T:
        """Run ``fn(client)``; raise ``RedisUnavailable`` when Redis is down or fails."""
        if not force and not self.available:
            raise RedisUnavailable(self.last_error or "Redis marked down")
        try:
            result = await fn(self.client)
        except ResponseError as exc:
            if isinstance(exc, ReadOnlyError) or str(exc).startswith(_OUTAGE_REPLIES):
                self._failed(exc)
                raise RedisUnavailable(self.last_error) from exc
            msg = f"{type(exc).__name__}: {exc}"
            raise RedisCommandError(msg) from exc
        except (RedisError, OSError) as exc:
            self._failed(exc)
            raise RedisUnavailable(self.last_error) from exc
        self._ok()
        return result

    async def ping(self) -> bool:
        """Probe Redis even while the breaker is open (readiness checks)."""
        try:
            await self.call(lambda r: r.ping(), force=True)
        except RedisUnavailable:
            return False
        return True

    async def close(self) -> None:
        try:
            await self.client.aclose()
        except (RedisError, OSError) as exc:  # closing a dead connection
            log.debug("closing Redis: %s", exc)
