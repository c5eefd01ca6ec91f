"""The one retry policy (minerlens_core.retrying), on a real event loop with small delays."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import pytest
from minerlens_core.retrying import Backoff, RetryLater, retry, retry_until_stopped

log = logging.getLogger("tests.retrying")


def first(backoff: Backoff, n: int) -> list[float]:
    return list(itertools.islice(backoff.delays(), n))


def test_delays_grow_by_the_multiplier_and_stop_at_the_cap() -> None:
    assert first(Backoff(initial_s=0.1, max_s=1.0), 7) == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    assert first(Backoff(initial_s=1.0, max_s=100.0, multiplier=3.0), 4) == pytest.approx([1.0, 3.0, 9.0, 27.0])
    assert first(Backoff(), 3) == pytest.approx([0.5, 1.0, 2.0])
    assert first(Backoff(initial_s=1.0, max_s=8.0), 200)[-1] == pytest.approx(8.0)  # no overflow far out


def test_jitter_adds_up_to_jitter_s() -> None:
    plain = first(Backoff(initial_s=0.1, max_s=0.5), 50)
    jittered = first(Backoff(initial_s=0.1, max_s=0.5, jitter_s=0.05), 50)
    extra = [j - p for j, p in zip(jittered, plain, strict=True)]
    assert all(0.0 <= e <= 0.05 for e in extra)
    assert len(set(extra)) > 1


class Flaky:
    """Fails ``failures`` times with ``exc``, then returns ``value``; records when it was called."""

    def __init__(self, failures: int, exc: BaseException, value: object = "done") -> None:
        self.failures, self.exc, self.value = failures, exc, value
        self.calls: list[float] = []

    async def __call__(self) -> object:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.failures:
            raise self.exc
        return self.value

    def gaps(self) -> list[float]:
        return [b - a for a, b in itertools.pairwise(self.calls)]


async def test_until_stopped_returns_the_value_after_failures(caplog: pytest.LogCaptureFixture) -> None:
    op = Flaky(3, ConnectionError("refused"), value=42)
    with caplog.at_level(logging.WARNING, logger="tests.retrying"):
        got = await retry_until_stopped(
            op,
            retry_on=(ConnectionError,),
            stop=asyncio.Event(),
            backoff=Backoff(initial_s=0.02, max_s=0.05),
            describe="fetching the thing",
            log=log,
        )
    assert got == 42
    assert len(op.calls) == 4
    gaps = op.gaps()
    assert gaps[0] >= 0.019
    assert gaps[1] >= 0.039
    assert gaps[2] >= 0.049  # capped at max_s
    assert gaps[2] < 0.5
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    assert "fetching the thing" in messages[0]
    assert "ConnectionError: refused" in messages[0]
    assert "in 0.02s" in messages[0]
    assert "in 0.04s" in messages[1]


async def test_until_stopped_returns_at_once_when_stop_is_set_during_the_wait() -> None:
    stop = asyncio.Event()
    op = Flaky(1_000, OSError("down"))
    asyncio.get_running_loop().call_later(0.1, stop.set)
    started = time.monotonic()
    got = await retry_until_stopped(
        op, retry_on=(OSError,), stop=stop, backoff=Backoff(initial_s=30.0, max_s=30.0), describe="x", log=log
    )
    assert got is None
    assert time.monotonic() - started < 2.0  # not the 30 s wait
    assert len(op.calls) == 1  # no attempt after stop


async def test_until_stopped_with_stop_already_set_does_not_call() -> None:
    stop = asyncio.Event()
    stop.set()
    op = Flaky(0, OSError())
    got = await retry_until_stopped(op, retry_on=(OSError,), stop=stop, backoff=Backoff(), describe="x", log=log)
    assert got is None
    assert op.calls == []


async def test_until_stopped_returns_none_when_stop_is_set_by_the_failing_attempt() -> None:
    stop = asyncio.Event()

    async def op() -> int:
        stop.set()
        raise OSError("down")

    got = await retry_until_stopped(op, retry_on=(OSError,), stop=stop, backoff=Backoff(), describe="x", log=log)
    assert got is None


async def test_until_stopped_lets_other_errors_through() -> None:
    op = Flaky(1, ValueError("bad input"))
    with pytest.raises(ValueError, match="bad input"):
        await retry_until_stopped(
            op, retry_on=(OSError,), stop=asyncio.Event(), backoff=Backoff(initial_s=0.01), describe="x", log=log
        )
    assert len(op.calls) == 1


async def test_until_stopped_is_cancellable_during_the_wait() -> None:
    op = Flaky(1_000, OSError("down"))
    task = asyncio.create_task(
        retry_until_stopped(
            op, retry_on=(OSError,), stop=asyncio.Event(), backoff=Backoff(initial_s=30.0), describe="x", log=log
        )
    )
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(op.calls) == 1


async def test_bounded_gives_up_with_the_last_error() -> None:
    op = Flaky(1_000, RetryLater("HTTP 503"))
    retried: list[tuple[str, float]] = []
    with pytest.raises(RetryLater, match="HTTP 503"):
        await retry(
            op,
            retry_on=(RetryLater,),
            backoff=Backoff(initial_s=0.01, max_s=0.02),
            max_retries=3,
            describe="x",
            log=log,
            on_retry=lambda exc, delay: retried.append((str(exc), delay)),
        )
    assert len(op.calls) == 4  # 1 + 3 retries
    assert retried == [("HTTP 503", 0.01), ("HTTP 503", 0.02), ("HTTP 503", 0.02)]


async def test_bounded_zero_retries_tries_once() -> None:
    op = Flaky(1, OSError("down"))
    with pytest.raises(OSError, match="down"):
        await retry(op, retry_on=(OSError,), backoff=Backoff(), max_retries=0, describe="x", log=log)
    assert len(op.calls) == 1


async def test_retry_after_replaces_the_backoff_delay_capped_at_max() -> None:
    op = Flaky(2, RetryLater("HTTP 429", retry_after_s=0.15), value="ok")
    delays: list[float] = []
    got = await retry(
        op,
        retry_on=(RetryLater,),
        backoff=Backoff(initial_s=0.01, max_s=0.2),
        max_retries=5,
        describe="x",
        log=log,
        on_retry=lambda _, delay: delays.append(delay),
    )
    assert got == "ok"
    assert delays == [0.15, 0.15]
    assert min(op.gaps()) >= 0.14
    capped: list[float] = []
    await retry(
        Flaky(1, RetryLater("HTTP 429", retry_after_s=60.0)),
        retry_on=(RetryLater,),
        backoff=Backoff(initial_s=0.01, max_s=0.05),
        max_retries=1,
        describe="x",
        log=log,
        on_retry=lambda _, delay: capped.append(delay),
    )
    assert capped == [0.05]


async def test_stopping_predicate_ends_retries_with_the_error() -> None:
    stopping = False
    op = Flaky(1_000, OSError("down"))

    def failed(exc: BaseException, delay: float) -> None:
        nonlocal stopping
        stopping = len(op.calls) >= 2

    with pytest.raises(OSError, match="down"):
        await retry(
            op,
            retry_on=(OSError,),
            backoff=Backoff(initial_s=0.01),
            describe="x",
            log=log,
            stopping=lambda: stopping,
            on_retry=failed,
        )
    assert len(op.calls) == 3  # the failure seen while stopping is not retried


async def test_describe_may_be_computed_at_each_failure(caplog: pytest.LogCaptureFixture) -> None:
    waiting = [5]
    op = Flaky(1, OSError("down"), value=None)
    with caplog.at_level(logging.INFO, logger="tests.retrying"):
        await retry(
            op,
            retry_on=(OSError,),
            backoff=Backoff(initial_s=0.01),
            max_retries=2,
            describe=lambda: f"sending ({waiting[0]} waiting)",
            log=log,
            level=logging.INFO,
        )
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "sending (5 waiting) failed (OSError: down); retry 1/2 in 0.01s" in caplog.records[0].getMessage()
