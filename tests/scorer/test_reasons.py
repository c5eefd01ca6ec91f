"""Inline reasons: ranking by importance x distance outside the benign range, and the operator's sentences."""

from __future__ import annotations

import numpy as np
import pytest
from minerlens_core.models import Background
from minerlens_scorer.reasons import ReasonRanker, benign_range, describe

NAMES = ("freq.sched_yield", "freq.read", "rate.sched_yield", "thread.count", "stat.entropy", "time.has_time")


def _background(importance: list[float] | None = None) -> Background:
    rng = np.random.default_rng(0)
    benign = np.column_stack(
        [
            np.zeros(200),  # sched_yield never in benign pods
            rng.uniform(0.05, 0.30, 200),  # read 5-30%
            np.zeros(200),
            rng.integers(1, 9, 200).astype(float),  # 1-8 threads
            rng.uniform(2.5, 4.0, 200),
            np.ones(200),
        ]
    )
    return Background.from_windows(NAMES, benign, np.zeros(200, np.int64), importance)


def test_the_spinning_miner_sentence() -> None:
    ranker = ReasonRanker(_background([0.5, 0.1, 0.2, 0.1, 0.1, 0.0]), NAMES, top=3)
    x = np.array([[0.41, 0.2, 350.0, 4.0, 3.0, 1.0]])
    (reasons,) = ranker.reasons(x)
    assert reasons[0].feature == "freq.sched_yield"
    assert reasons[0].text == "sched_yield 41% of calls (benign pods: 0%)"
    assert reasons[0].value == pytest.approx(0.41)
    assert reasons[0].baseline == 0.0
    assert reasons[1].feature == "rate.sched_yield"
    assert reasons[1].text.startswith("sched_yield 350 calls/s (benign pods: 0")
    # values inside the benign range are not reasons
    assert {r.feature for r in reasons} == {"freq.sched_yield", "rate.sched_yield"}


def test_importance_weighs_the_distance() -> None:
    x = np.array([[0.05, 0.9, 0.0, 4.0, 3.0, 1.0]])  # mildly odd sched_yield, very odd read
    by_yield = ReasonRanker(_background([0.99, 0.01, 0, 0, 0, 0]), NAMES).reasons(x)[0]
    by_read = ReasonRanker(_background([0.01, 0.99, 0, 0, 0, 0]), NAMES).reasons(x)[0]
    assert by_yield[0].feature == "freq.sched_yield"
    assert by_read[0].feature == "freq.read"


def test_below_the_range_counts_too_and_unknown_values_do_not() -> None:
    ranker = ReasonRanker(_background([0.2, 0.2, 0.2, 0.2, 0.2, 0.0]), NAMES)
    x = np.array([[0.0, 0.2, np.nan, 4.0, 0.3, 1.0]])  # entropy far below benign, rate unknown
    (reasons,) = ranker.reasons(x)
    assert [r.feature for r in reasons] == ["stat.entropy"]
    assert reasons[0].text == "syscall entropy 0.30 bits (benign pods: 2.6-3.9)"


def test_without_importance_every_feature_weighs_the_same() -> None:
    ranker = ReasonRanker(_background(None), NAMES)
    assert ranker.uniform_importance
    (reasons,) = ranker.reasons(np.array([[0.5, 0.2, 0.0, 64.0, 3.0, 1.0]]))
    assert {r.feature for r in reasons} == {"freq.sched_yield", "thread.count"}
    assert "64 threads calling (benign pods: 1-8)" in [r.text for r in reasons]


def test_time_has_time_is_never_a_reason() -> None:
    ranker = ReasonRanker(_background([0, 0, 0, 0, 0, 1.0]), NAMES)
    assert ranker.reasons(np.array([[0.0, 0.2, 0.0, 4.0, 3.0, 0.0]])) == [[]]


def test_many_rows_at_once() -> None:
    ranker = ReasonRanker(_background([0.5, 0.1, 0.2, 0.1, 0.1, 0.0]), NAMES, top=2)
    X = np.array([[0.41, 0.2, 350.0, 4.0, 3.0, 1.0], [0.0, 0.2, 0.0, 4.0, 3.0, 1.0]])
    out = ranker.reasons(X)
    assert [len(r) for r in out] == [2, 0]


def test_mismatched_background_is_refused() -> None:
    with pytest.raises(ValueError, match="feature names"):
        ReasonRanker(_background(), NAMES[:-1])


@pytest.mark.parametrize(
    ("name", "value", "lo", "hi", "text"),
    [
        ("freq_nocheap.futex", 0.8, 0.0, 0.004, "futex 80% of non-trivial calls (benign pods: < 1%)"),
        (
            "cheap_share",
            0.7,
            0.0,
            0.1,
            "trivial calls (getpid, clock_gettime, sleeps...) 70% of calls (benign pods: 0-10%)",
        ),
        ("stat.log_count", np.log10(1001), 1.0, 2.0, "1,000 syscalls in the window (benign pods: 9-99)"),
        ("thread.dominated", 4.0, 0.0, 0.0, "4 threads stuck in one syscall (benign pods: 0)"),
        (
            "ngram3_nc.17",
            0.5,
            0.0,
            0.02,
            "syscall triple pattern #17 in 50% of consecutive triples (benign pods: 0-2%)",
        ),
        ("rate.syscalls_per_s", 12.0, 500.0, 20000.0, "12 syscalls/s (benign pods: 500-20,000)"),
        ("iat.median_us", 80000.0, 5.0, 900.0, "median gap between calls 80,000 us (benign pods: 5-900)"),
        ("freq.poll", 0.2, float("nan"), float("nan"), "poll 20% of calls (benign pods: unknown)"),
    ],
)
def test_sentences(name: str, value: float, lo: float, hi: float, text: str) -> None:
    assert describe(name, value, lo, hi) == text


def test_benign_range_of_shares() -> None:
    assert benign_range("freq.read", 0.05, 0.3) == "5-30%"
    assert benign_range("freq.read", 0.0, 0.0) == "0%"
    assert benign_range("freq.read", 0.0, 0.005) == "< 1%"


def test_a_hashed_pair_bucket_is_named_by_the_windows_own_syscalls() -> None:
    from minerlens_core.features import index_of, ngram_buckets

    poll, recv, write = index_of("poll"), index_of("recvfrom"), index_of("write")
    seq = [poll, recv] * 20 + [write, write]
    bucket = int(ngram_buckets(np.array([poll, recv]), 2, 128)[0])
    names = (f"ngram2_nc.{bucket}", "freq.read")
    benign = np.column_stack([np.zeros(100), np.full(100, 0.2)])
    ranker = ReasonRanker(Background.from_windows(names, benign, np.zeros(100, np.int64), [0.5, 0.5]), names)
    x = np.array([[0.5, 0.2]])
    (with_seq,) = ranker.reasons(x, [seq])
    assert with_seq[0].feature == names[0]
    assert "(here: poll→recvfrom" in with_seq[0].text
    (without,) = ranker.reasons(x)
    assert "here:" not in without[0].text
