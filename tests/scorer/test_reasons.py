"""Inline reasons: the behaviour summary first, then the features ranked by importance x distance outside the
benign range, worded by the feature library (one reason per syscall, n-gram buckets named by syscalls)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from minerlens_core.features import index_of, ngram_buckets
from minerlens_core.models import Background
from minerlens_core.schemas.windows import ProcessRef
from minerlens_scorer.reasons import SUMMARY, ReasonRanker

from tests.core.test_describe import V2, idle_trace, lab_windows, miner_trace, web_trace

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


def test_the_spinning_miner_sentences() -> None:
    ranker = ReasonRanker(_background([0.5, 0.1, 0.2, 0.1, 0.1, 0.0]), NAMES, top=3)
    x = np.array([[0.41, 0.2, 350.0, 4.0, 3.0, 1.0]])
    (reasons,) = ranker.reasons(x)
    summary, *features = reasons
    assert summary.feature == SUMMARY
    assert summary.value is None
    assert summary.contribution == pytest.approx(sum(r.contribution for r in features), abs=1e-5)
    assert summary.text == (
        "Syscalls unknown; 4 threads made calls; CPU, memory, open sockets and socket vs file I/O unknown "
        "(not measured); top syscalls: sched_yield 41%, read 20%."
    )  # a spec of 6 features knows little
    assert features[0].feature == "freq.sched_yield"
    assert features[0].text == "sched_yield is 41% of calls (benign pods: 0%)"
    assert features[0].value == pytest.approx(0.41)
    assert features[0].baseline == 0.0
    # rate.sched_yield is about the same syscall: said once, by its heaviest feature
    assert [r.feature for r in features] == ["freq.sched_yield"]


def test_one_reason_per_syscall_leaves_room_for_others() -> None:
    ranker = ReasonRanker(_background([0.5, 0.1, 0.2, 0.1, 0.1, 0.0]), NAMES, top=3)
    (reasons,) = ranker.reasons(np.array([[0.41, 0.9, 350.0, 40.0, 3.0, 1.0]]))
    assert [r.feature for r in reasons[:2]] == [SUMMARY, "freq.sched_yield"]
    assert {r.feature for r in reasons[2:]} == {"freq.read", "thread.count"}
    weights = [r.contribution for r in reasons]
    assert weights == sorted(weights, reverse=True)
    assert "40 threads made calls (benign pods: 1-8)" in [r.text for r in reasons]


def test_importance_weighs_the_distance() -> None:
    x = np.array([[0.05, 0.9, 0.0, 4.0, 3.0, 1.0]])  # mildly odd sched_yield, very odd read
    by_yield = ReasonRanker(_background([0.99, 0.01, 0, 0, 0, 0]), NAMES).reasons(x)[0]
    by_read = ReasonRanker(_background([0.01, 0.99, 0, 0, 0, 0]), NAMES).reasons(x)[0]
    assert by_yield[1].feature == "freq.sched_yield"
    assert by_read[1].feature == "freq.read"


def test_below_the_range_counts_too_and_unknown_values_do_not() -> None:
    ranker = ReasonRanker(_background([0.2, 0.2, 0.2, 0.2, 0.2, 0.0]), NAMES)
    x = np.array([[0.0, 0.2, np.nan, 4.0, 0.3, 1.0]])  # entropy far below benign, rate unknown
    (reasons,) = ranker.reasons(x)
    assert [r.feature for r in reasons] == [SUMMARY, "stat.entropy"]
    assert re.fullmatch(
        r"syscall entropy is 0\.30 bits \(low = repetitive\) \(benign pods: 2\.\d\d-3\.\d\d bits\)", reasons[1].text
    )


def test_without_importance_every_feature_weighs_the_same() -> None:
    ranker = ReasonRanker(_background(None), NAMES)
    assert ranker.uniform_importance
    (reasons,) = ranker.reasons(np.array([[0.5, 0.2, 0.0, 64.0, 3.0, 1.0]]))
    assert {r.feature for r in reasons} == {SUMMARY, "freq.sched_yield", "thread.count"}
    assert "64 threads made calls (benign pods: 1-8)" in [r.text for r in reasons]


def test_flags_are_never_reasons_and_the_summary_stays() -> None:
    ranker = ReasonRanker(_background([0, 0, 0, 0, 0, 1.0]), NAMES)
    ((summary,),) = ranker.reasons(np.array([[0.0, 0.2, 0.0, 4.0, 3.0, 0.0]]))
    assert summary.feature == SUMMARY
    assert summary.contribution == 0.0
    assert summary.text.endswith(
        "4 threads made calls; CPU, memory, open sockets and socket vs file I/O unknown (not measured); "
        "top syscalls: read 20%."
    )


def test_top_zero_means_no_reasons_at_all() -> None:
    ranker = ReasonRanker(_background([0.5, 0.1, 0.2, 0.1, 0.1, 0.0]), NAMES, top=0)
    assert ranker.reasons(np.array([[0.41, 0.2, 350.0, 4.0, 3.0, 1.0]])) == [[]]


def test_many_rows_at_once() -> None:
    ranker = ReasonRanker(_background([0.5, 0.1, 0.2, 0.1, 0.1, 0.0]), NAMES, top=2)
    X = np.array([[0.41, 0.9, 350.0, 4.0, 3.0, 1.0], [0.0, 0.2, 0.0, 4.0, 3.0, 1.0]])
    out = ranker.reasons(X)
    assert [len(r) for r in out] == [3, 1]


def test_mismatched_background_is_refused() -> None:
    with pytest.raises(ValueError, match="feature names"):
        ReasonRanker(_background(), NAMES[:-1])


def test_a_hashed_pair_bucket_is_named_by_the_windows_own_syscalls() -> None:
    poll, recv, write = index_of("poll"), index_of("recvfrom"), index_of("write")
    seq = [poll, recv] * 20 + [write, write]
    bucket = int(ngram_buckets(np.array([poll, recv]), 2, 128)[0])
    names = (f"ngram2_nc.{bucket}", "freq.read")
    benign = np.column_stack([np.zeros(100), np.full(100, 0.2)])
    ranker = ReasonRanker(Background.from_windows(names, benign, np.zeros(100, np.int64), [0.5, 0.5]), names)
    x = np.array([[0.5, 0.2]])
    (with_seq,) = ranker.reasons(x, [seq])
    assert with_seq[1].feature == names[0]
    assert (
        with_seq[1].text
        == "syscall pairs like poll→recvfrom are 50% of consecutive non-trivial syscall pairs (benign pods: 0%)"
    )
    (without,) = ranker.reasons(x)
    assert "poll" not in without[1].text
    assert not re.search(r"\d+ (are|is)|#\d|bucket \d", without[1].text), without[1].text


def _v2_ranker() -> tuple[ReasonRanker, np.ndarray]:
    """A ranker over real v2 windows: benign = an idle redis and a busy nginx, miner = a no-yield miner."""
    benign = np.concatenate([lab_windows(idle_trace(20))[1], lab_windows(web_trace(8, per_s=2000))[1]])
    miner = lab_windows(miner_trace(10))[1]
    X = np.concatenate([benign, miner])
    y = np.r_[np.zeros(len(benign), np.int64), np.ones(len(miner), np.int64)]
    names = V2.names
    importance = np.zeros(len(names))
    for n in ("res.cpu_cores", "res.log_syscalls_per_cpu_s", "io.socket_share", "freq.futex"):
        importance[names.index(n)] = 1.0
    return ReasonRanker(Background.from_windows(names, X, y, importance), names, top=3, params=V2.params), miner


def test_version_2_reasons_say_cores_and_syscalls_per_cpu_second() -> None:
    ranker, miner = _v2_ranker()
    ref = ProcessRef(pid=10, comm="xmrig", exe="/usr/bin/xmrig", cpu_cores=2.0)
    (reasons,) = ranker.reasons(miner[1:2], processes=[ref], scopes=["process"])
    summary = reasons[0].text
    m = re.match(
        r"Process xmrig \(pid 10, /usr/bin/xmrig, 2\.0 cores\): 2\.0 cores busy while making 20 syscalls/s "
        r"\(10 per CPU-second; benign pods: ([\d,]+)-([\d,]+) syscalls per CPU-second\)",
        summary,
    )
    assert m, summary
    lo, hi = (float(g.replace(",", "")) for g in m.groups())
    assert 10 < lo < hi  # the idle pod's ~1,000 per CPU-second and nginx's ~16,667
    texts = {r.feature: r.text for r in reasons[1:]}
    assert texts["res.cpu_cores"].startswith("2.0 cores busy (benign pods: < 0.01-0.6 cores)"), texts
    assert re.match(
        r"10 syscalls per CPU-second \(benign pods: [\d,]+-[\d,]+ syscalls per CPU-second\)",
        texts["res.log_syscalls_per_cpu_s"],
    )
    assert all(not math.isnan(r.contribution) for r in reasons)
