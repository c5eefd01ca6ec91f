"""One retry policy for every service: exponential backoff, capped, with optional jitter (on tenacity).

* ``Backoff``: the delays between attempts (``initial_s``, ``initial_s * multiplier``, ... capped at ``max_s``,
  plus a uniform jitter of up to ``jitter_s``).
* ``retry_until_stopped``: a worker's dependency (broker, API) is away: try again until it answers or the
  service stops; the wait between attempts ends as soon as ``stop`` is set.
* ``retry``: the same policy, bounded (``max_retries``) and/or given up once ``stopping()`` says so; the last
  error then propagates to the caller, which decides what is lost.
* ``RetryLater``: raised by an operation for a transient failure that is not an exception of its own (an
  HTTP 429 or 5xx); ``retry_after_s`` (a server's ``Retry-After``) replaces the backoff's next delay.

Every retried failure is logged (``describe``, the exception and the next delay) before the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, stop_never
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_exponential, wait_random

T = TypeVar("T")

__all__ = ["Backoff", "RetryLater", "retry", "retry_until_stopped"]


class RetryLater(Exception):
    """A transient failure worth another attempt; ``retry_after_s`` (when known) sets the next delay."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 0.5
    max_s: float = 30.0
    multiplier: float = 2.0
    jitter_s: float = 0.0

    def wait(self) -> wait_base:
        """The tenacity wait strategy of these delays."""
        exponential = wait_exponential(multiplier=self.initial_s, exp_base=self.multiplier, max=self.max_s)
        return exponential + wait_random(0, self.jitter_s) if self.jitter_s > 0 else exponential

    def delays(self) -> Iterator[float]:
        """The delays before the second, third, ... attempt; endless."""
        wait = self.wait()
        state = RetryCallState(AsyncRetrying(), None, (), {})
        for attempt in itertools.count(1):
            state.attempt_number = attempt
            yield wait(state)


class _WaitRetryAfter(wait_base):
    """The backoff's delay, or the ``retry_after_s`` of a ``RetryLater`` (both capped at ``max_s``)."""

    def __init__(self, backoff: Backoff) -> None:
        self._backoff = backoff
        self._fallback = backoff.wait()

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, RetryLater) and exc.retry_after_s is not None:
            return min(max(exc.retry_after_s, 0.0), self._backoff.max_s)
        return self._fallback(retry_state)


class _StopWhen(stop_base):
    def __init__(self, predicate: Callable[[], bool]) -> None:
        self._predicate = predicate

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._predicate()


Describe = str | Callable[[], str]
"""what is being tried, for the log (a callable is asked at each failure, e.g. to say how much is waiting)"""


def _before_sleep(
    log: logging.Logger,
    describe: Describe,
    level: int,
    max_retries: int | None,
    on_retry: Callable[[BaseException, float], None] | None,
) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        assert exc is not None  # only failures are retried
        delay = state.upcoming_sleep
        if on_retry is not None:
            on_retry(exc, delay)
        what = describe() if callable(describe) else describe
        of = "" if max_retries is None else f"/{max_retries}"
        log.log(
            level,
            "%s failed (%s: %s); retry %d%s in %.2fs",
            what,
            type(exc).__name__,
            exc,
            state.attempt_number,
            of,
            delay,
        )

    return before_sleep


async def retry(
    op: Callable[[], Awaitable[T]],
    *,
    retry_on: tuple[type[BaseException], ...],
    backoff: Backoff,
    describe: Describe,
    log: logging.Logger,
    max_retries: int | None = None,
    stopping: Callable[[], bool] | None = None,
    on_retry: Callable[[BaseException, float], None] | None = None,
    level: int = logging.WARNING,
) -> T:
    """``await op()`` again after each ``retry_on`` failure; returns its first success.

    Gives up after ``max_retries`` retries (None: never) or, at a failure, once ``stopping()`` is true: that
    last failure then propagates. Any other exception propagates at once. ``on_retry(exc, delay)`` runs before
    each wait (e.g. to count retries).
    """
    stop: stop_base = stop_never if max_retries is None else stop_after_attempt(max_retries + 1)
    if stopping is not None:
        stop = stop | _StopWhen(stopping)
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(retry_on),
        wait=_WaitRetryAfter(backoff),
        stop=stop,
        before_sleep=_before_sleep(log, describe, level, max_retries, on_retry),
        reraise=True,
    )

    async def attempt() -> T:
        return await op()

    result: T = await retrying(attempt)
    return result


class _Stopped:
    """what an attempt returns instead of running once ``stop`` is set"""


_STOPPED = _Stopped()


async def retry_until_stopped(
    op: Callable[[], Awaitable[T]],
    *,
    retry_on: tuple[type[BaseException], ...],
    stop: asyncio.Event,
    backoff: Backoff,
    describe: Describe,
    log: logging.Logger,
) -> T | None:
    """``await op()`` until it succeeds (its value) or ``stop`` is set (None, without a further attempt).

    The wait between attempts ends when ``stop`` is set; a failure other than ``retry_on`` propagates.
    """

    async def attempt() -> T | _Stopped:
        if stop.is_set():
            return _STOPPED
        return await op()

    async def sleep(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(retry_on),
        wait=_WaitRetryAfter(backoff),
        stop=_StopWhen(stop.is_set),
        sleep=sleep,
        before_sleep=_before_sleep(log, describe, logging.WARNING, None, None),
        reraise=True,
    )
    try:
        result: Any = await retrying(attempt)
    except retry_on:
        if stop.is_set():  # failed as the service stopped: nothing more to try
            return None
        raise
    return None if result is _STOPPED else result
