"""The offline replay of the alert policy (training) decides exactly as the scorer's ``AlertEngine`` on the same
score sequences: same windows open alerts, same windows resolve them, same quiet-timeout closes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from minerlens_core.schemas.envelope import Envelope, PodRef
from minerlens_core.schemas.windows import ModelRef, ProcessRef, Verdict, window_id
from minerlens_scorer.alerting import AlertEngine, AlertPolicy
from minerlens_scorer.findings import FindingFactory
from minerlens_training.alert_replay import ScorerAlertPolicy, replay

MODEL = ModelRef(name="minerlens-xgboost", version="0.1.0", manifest_sha256="a" * 64)
T0 = 1_795_000_000.0


def _verdict(
    i: int, score: float, count: int, res: bool, threshold: float, min_syscalls: int, t: float, pid: int | None = None,
    gated: bool = False,
) -> Verdict:  # fmt: skip
    """What the scorer's ``Scorer`` makes of a window: ``insufficient_data`` below ``min_syscalls`` unless the window
    carries resource use (``res.has``), else its score. ``pid``: the window of that process in slot ``i``.
    ``gated``: the model's decision gate closed the window (benign whatever its score)."""
    insufficient = count < min_syscalls and not res
    decision = "insufficient_data" if insufficient else "miner" if score > threshold and not gated else "benign"
    return Verdict(
        envelope=Envelope(cluster="c", node="n", pod=PodRef(uid="uid-a", namespace="ns", name="p"), container_id="c0"),
        window_id=window_id("uid-a", "c0", "time:2s", i, pid),
        scope="stream" if pid is None else "process",
        process=None if pid is None else ProcessRef(pid=pid, comm=f"p{pid}"),
        policy="time:2s",
        index=i,
        start_ns=int((t - 2) * 1e9),
        end_ns=int(t * 1e9),
        count=count,
        decision=decision,  # type: ignore[arg-type]
        score=None if insufficient else score,
        threshold=threshold,
        model=MODEL,
    )


Arr = np.ndarray[Any, Any]


def _engine_events(
    scores: Arr, counts: Arr, res: Arr, times: Arr, thr: float, p: ScorerAlertPolicy,
    slots: Arr | None = None, pids: Arr | None = None, gated: Arr | None = None,
) -> list[tuple[int, str]]:  # fmt: skip
    policy = AlertPolicy(
        k=p.k,
        n=p.n,
        resolve_m=p.resolve_m,
        resolve_factor=p.resolve_factor,
        quiet_timeout_s=p.quiet_timeout_s,
        forget_after_s=p.forget_after_s,
    )
    engine = AlertEngine(policy, FindingFactory(policy, "test"), clock=lambda: T0)
    out: list[tuple[int, str]] = []

    def note(i: int, findings: list[Any]) -> None:
        for f in findings:
            if f.activity_name == "Create":
                out.append((i, "open"))
            elif f.activity_name == "Close":
                why = f.unmapped["minerlens"]["resolution"]
                out.append((i, "quiet" if "no scored window" in why else "resolve"))

    slot_of = np.arange(scores.size) if slots is None else slots
    pid_of = np.zeros(scores.size, np.int64) if pids is None else pids
    gate = np.zeros(scores.size, np.bool_) if gated is None else gated
    rows = zip(
        scores.tolist(), counts.tolist(), res.tolist(), times.tolist(), slot_of.tolist(), pid_of.tolist(),
        gate.tolist(), strict=True,
    )  # fmt: skip
    for i, (s, c, r, t, slot, pid, g) in enumerate(rows):
        note(i, engine.expire(now=t))
        note(i, engine.observe(_verdict(slot, s, c, r, thr, p.min_syscalls, t, pid or None, g), now=t))
    return out


def _sequence(rng: np.random.Generator, n: int) -> tuple[Arr, Arr, Arr, Arr]:
    """Bursty scores (runs of high and low), some tiny windows (some with resource use), 2-s steps with
    occasional long silences."""
    level = np.repeat(rng.random(n // 4 + 1) < 0.4, 4)[:n]
    scores = np.where(level, rng.uniform(0.55, 1.0, n), rng.uniform(0.0, 0.6, n))
    counts = np.where(rng.random(n) < 0.2, rng.integers(0, 3, n), rng.integers(3, 500, n))
    res = rng.random(n) < 0.3
    gaps = np.where(rng.random(n) < 0.05, rng.choice([400.0, 4000.0], n), 2.0)
    return scores, counts, res, T0 + np.cumsum(gaps)


@pytest.mark.parametrize(
    "policy",
    [
        ScorerAlertPolicy(),
        ScorerAlertPolicy(k=1, n=1, resolve_m=1, resolve_factor=1.0),
        ScorerAlertPolicy(k=2, n=4, resolve_m=3, resolve_factor=0.8, quiet_timeout_s=60, min_syscalls=1),
        ScorerAlertPolicy(k=4, n=6, resolve_m=2, resolve_factor=0.3, forget_after_s=500),
    ],
)
def test_replay_decides_like_the_scorer(policy: ScorerAlertPolicy) -> None:
    rng = np.random.default_rng(policy.k * 100 + policy.n)
    kinds: set[str] = set()
    for _ in range(60):
        scores, counts, res, times = _sequence(rng, int(rng.integers(5, 120)))
        thr = float(rng.uniform(0.5, 0.9))
        ours = list(replay(scores, thr, counts, times, policy, res).events)
        assert ours == _engine_events(scores, counts, res, times, thr, policy)
        kinds |= {e for _, e in ours}
    assert kinds == {"open", "resolve", "quiet"}, "the sequences must exercise every transition"


def test_alert_score_is_the_threshold_at_which_a_stream_alerts() -> None:
    rng = np.random.default_rng(7)
    policy = ScorerAlertPolicy()
    for _ in range(100):
        scores, counts, res, times = _sequence(rng, int(rng.integers(1, 60)))
        a = replay(scores, 0.5, counts, times, policy, res).alert_score
        for thr in (0.0, 0.3, 0.6, 0.8, 0.95, max(a - 1e-9, 0.0), a):  # thresholds are scores: >= 0
            assert (replay(scores, thr, counts, times, policy, res).first_open is not None) == (a > thr)


def test_replay_without_time_and_tiny_windows() -> None:
    p = ScorerAlertPolicy(k=3, n=5)
    r = replay([0.9, 0.9, 0.9, 0.1], 0.5, [10, 1, 10, 10], None, p)
    assert r.events == ()  # the 1-syscall window is not scored: only 2 over
    assert r.scored == 3
    r = replay([0.9, 0.9, 0.9, 0.1], 0.5, [10, 0, 10, 10], None, p, [False, True, False, False])
    assert r.events == ((2, "open"),)  # ... unless it carries the pod's resource use
    r = replay([0.9, 0.9, 0.9] + [0.1] * 5 + [0.9] * 3, 0.5, [10] * 11, None, p)
    assert r.events == ((2, "open"), (7, "resolve"), (10, "open"))
    with pytest.raises(ValueError, match="differ in length"):
        replay([0.1], 0.5, [1, 2], None, p)


def test_slots_count_once_like_the_scorer() -> None:
    """A pod's stream window and its process windows (one slot) count once: over when any is, highest score."""
    rng = np.random.default_rng(11)
    policy = ScorerAlertPolicy(k=3, n=5, resolve_m=3)
    kinds: set[str] = set()
    opened_by_process = 0
    for _ in range(80):
        n_slots = int(rng.integers(5, 60))
        scores, counts, res, times = _sequence(rng, n_slots)
        per_slot = rng.integers(1, 4, n_slots)  # the stream window, then 0-2 process windows
        slot = np.repeat(np.arange(n_slots), per_slot)
        pid = np.concatenate([np.arange(k) * 100 for k in per_slot])  # 0: the stream window
        extra = rng.uniform(0.0, 1.0, slot.size)
        s = np.where(pid == 0, scores[slot], extra)
        c = np.where(pid == 0, counts[slot], rng.integers(0, 200, slot.size))
        r, t = res[slot], times[slot]
        thr = float(rng.uniform(0.5, 0.9))
        ours = list(replay(s, thr, c, t, policy, r, slots=slot).events)
        assert ours == _engine_events(s, c, r, t, thr, policy, slot, pid)
        kinds |= {e for _, e in ours}
        opened_by_process += sum(pid[i] != 0 for i, e in ours if e == "open")
    assert kinds == {"open", "resolve", "quiet"}
    assert opened_by_process > 0, "some alerts must open on a process window of a slot"
    spread = [0.9, 0.1, 0.1] * 3  # one window over in each of 3 slots of 3 windows
    one = replay(spread, 0.5, [10] * 9, None, policy, slots=np.repeat(np.arange(3), 3))
    assert one.events == ((6, "open"),)
    assert one.scored == 3
    assert replay(spread, 0.5, [10] * 9, None, policy).events == ()  # as 9 windows: 2 of the last 5 over


def test_gated_windows_decide_like_the_scorer() -> None:
    """Windows the model's decision gate closes (the scorer's verdict: benign, score kept) never count as over,
    in the replay as in the engine, with and without process windows in the slots."""
    rng = np.random.default_rng(23)
    policy = ScorerAlertPolicy(k=3, n=5, resolve_m=3, gate="network")
    kinds: set[str] = set()
    suppressed = 0
    for _ in range(80):
        n_slots = int(rng.integers(5, 60))
        scores, counts, res, times = _sequence(rng, n_slots)
        per_slot = rng.integers(1, 3, n_slots)
        slot = np.repeat(np.arange(n_slots), per_slot)
        pid = np.concatenate([np.arange(k) * 100 for k in per_slot])
        s = np.where(pid == 0, scores[slot], rng.uniform(0.0, 1.0, slot.size))
        c, r, t = counts[slot], res[slot], times[slot]
        gated = np.repeat(rng.random(slot.size // 3 + 1) < 0.4, 3)[: slot.size] & (rng.random(slot.size) < 0.9)
        thr = float(rng.uniform(0.5, 0.9))
        ours = list(replay(s, thr, c, t, policy, r, slots=slot, gated=gated).events)
        assert ours == _engine_events(s, c, r, t, thr, policy, slot, pid, gated)
        ungated = list(replay(s, thr, c, t, policy, r, slots=slot).events)
        suppressed += sum(e == "open" for _, e in ungated) - sum(e == "open" for _, e in ours)
        kinds |= {e for _, e in ours}
    assert kinds == {"open", "resolve", "quiet"}
    assert suppressed > 0, "the gate must keep some alerts from opening"
    high = [0.95] * 6
    assert replay(high, 0.5, [10] * 6, None, policy, gated=[True] * 6).events == ()
    assert replay(high, 0.5, [10] * 6, None, policy, gated=[True, False] * 3).events == ((5, "open"),)
    a = replay(high, 0.5, [10] * 6, None, policy, gated=[True] * 6).alert_score
    assert a == 0.0  # the threshold at which the stream alerts: never
