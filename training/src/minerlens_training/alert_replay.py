"""The scorer's alert decision, replayed offline over one stream's window scores.

Training may not import the services, so this re-implements the *decision* part of
``minerlens_scorer.alerting.AlertEngine`` (docs/alerts.md) for one pod (or one process) whose windows
arrive in time order; ``tests/training/test_alert_replay.py`` replays the same score sequences through
both and requires the same opens and closes. Per window, in order:

1. *expire* (the engine's periodic ``expire`` at the window's end time): an open alert whose stream sent
   no scored window for ``quiet_timeout_s`` closes (``quiet``); without an open alert, a stream silent
   for ``forget_after_s`` is forgotten (its recent windows too).
2. a window with fewer than ``min_syscalls`` syscalls is ``insufficient_data`` (it counts neither way) unless
   it carries the pod's resource use (feature ``res.has``: the scorer judges a pod that burns CPU without
   syscalls on it).
3. otherwise it joins the last ``n`` scored windows; it is *over* when ``score > threshold`` and the model's
   decision gate (``policy.gate``, ``minerlens_core.features.gates``) left it open (``gated`` False).
   No open alert: when ``k`` of those are over, an alert **opens** at this window.
   Open alert: ``resolve_m`` consecutive windows below ``resolve_factor x threshold`` **resolve** it
   (the window that opened it is not counted); a close clears the recent windows, so a new alert needs
   ``k`` fresh windows over the threshold.

Updates (severity, peak) do not change when alerts open or close and are not replayed. Without
timestamps (count windows of an order-only trace) steps 1 never fires.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
Event = Literal["open", "resolve", "quiet"]


@dataclass(frozen=True)
class ScorerAlertPolicy:
    """The scorer's alert settings (defaults = ``minerlens_scorer.settings``: k 3, n 5, resolve 5 x 0.5, 300 s)."""

    k: int = 3
    n: int = 5
    resolve_m: int = 5
    resolve_factor: float = 0.5
    quiet_timeout_s: float = 300.0
    forget_after_s: float = 3600.0
    min_syscalls: int = 3
    gate: str = "none"
    """the model's decision gate (``none`` | ``network``): gated windows are scored but never over"""

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n:
            msg = f"need 1 <= k <= n, got k={self.k} n={self.n}"
            raise ValueError(msg)
        if self.resolve_m < 1 or not 0 < self.resolve_factor <= 1 or self.min_syscalls < 0:
            msg = "need resolve_m >= 1, 0 < resolve_factor <= 1 and min_syscalls >= 0"
            raise ValueError(msg)

    def __str__(self) -> str:
        return (
            f"open at {self.k} of the last {self.n} scored windows over the threshold, resolve after "
            f"{self.resolve_m} consecutive windows below {self.resolve_factor:g} x threshold or "
            f"{self.quiet_timeout_s:g} s without a scored window; windows with fewer than {self.min_syscalls} "
            "syscalls are not scored"
            + (
                "; windows without network (no socket open, no socket I/O) are never over"
                if self.gate != "none"
                else ""
            )
        )


@dataclass(frozen=True)
class StreamAlerts:
    events: tuple[tuple[int, Event], ...]
    """(window position, what happened), in order; a ``quiet`` close is reported at the window that followed"""
    alert_score: float
    """max over the stream of the k-th highest score among the last n scored windows (0: never k scored): the
    stream opens an alert at a threshold t >= 0 iff ``alert_score > t``"""
    scored: int
    """slots the scorer scores (windows of at least ``min_syscalls`` syscalls, or with resource use)"""

    @property
    def opened(self) -> list[int]:
        return [i for i, e in self.events if e == "open"]

    @property
    def first_open(self) -> int | None:
        return next((i for i, e in self.events if e == "open"), None)


def replay(
    scores: Sequence[float] | F64,
    threshold: float,
    counts: Sequence[int] | npt.NDArray[np.int64],
    end_s: Sequence[float] | F64 | None,
    policy: ScorerAlertPolicy,
    has_resources: Sequence[bool] | npt.NDArray[np.bool_] | None = None,
    slots: Sequence[int] | npt.NDArray[np.int64] | None = None,
    gated: Sequence[bool] | npt.NDArray[np.bool_] | None = None,
) -> StreamAlerts:
    """Replay one stream's windows (in arrival order): ``scores``, their syscall ``counts``, end times in
    seconds (``None`` or NaN: unknown) and whether each carries resource use (``None``: none does).

    ``slots``: consecutive windows with the same slot id are one slot of the pod (a stream window followed by
    its process windows): as in the engine, the slot counts once, over when any of its windows is, with the
    highest score so far; a window that is not the slot's first moves no resolve count but a high one resets
    it; a close clears the slot, so its later windows start a new one. ``None``: every window its own slot.
    ``gated``: windows the model's decision gate made benign (the scorer's verdict says ``benign``): never over,
    but their scores still hold off a resolve (the engine's slot keeps its highest score)."""
    s = np.asarray(scores, np.float64)
    c = np.asarray(counts, np.int64)
    t = np.full(s.size, np.nan) if end_s is None else np.asarray(end_s, np.float64)
    res = np.zeros(s.size, np.bool_) if has_resources is None else np.asarray(has_resources, np.bool_)
    if not s.size == c.size == t.size == res.size:
        msg = f"scores, counts, times and resource flags differ in length ({s.size}, {c.size}, {t.size}, {res.size})"
        raise ValueError(msg)
    g = np.zeros(s.size, np.bool_) if gated is None else np.asarray(gated, np.bool_)
    if g.size != s.size:
        msg = f"gated flags differ in length from the scores ({g.size}, {s.size})"
        raise ValueError(msg)
    scorable = (c >= policy.min_syscalls) | res
    slot_of = np.arange(s.size, dtype=np.int64) if slots is None else np.asarray(slots, np.int64)
    if slot_of.size != s.size:
        msg = f"slots differ in length from the scores ({slot_of.size}, {s.size})"
        raise ValueError(msg)
    p = policy
    events: list[tuple[int, Event]] = []
    recent: deque[bool] = deque(maxlen=p.n)
    ranked: deque[float] = deque(maxlen=p.n)
    is_open, below = False, 0
    last_seen = last_scored = float("nan")
    best = 0.0
    lower = p.resolve_factor * threshold
    current: int | None = None  # the slot the last entry of ``recent`` stands for
    slot_score = 0.0  # highest raw score of that slot (what a resolve compares)
    scored = 0
    for i in range(s.size):
        now = t[i]
        if not np.isnan(now):
            gap = now - last_seen if not np.isnan(last_seen) else 0.0
            if gap >= p.forget_after_s:
                ranked.clear()  # independent of the threshold: alert_score stays exact (see StreamAlerts)
            if is_open and not np.isnan(last_scored) and now - last_scored >= p.quiet_timeout_s:
                events.append((i, "quiet"))
                is_open, below = False, 0
                recent.clear()
                current = None
            elif not is_open and gap >= p.forget_after_s:
                recent.clear()
                current = None
        last_seen = now
        if not scorable[i]:
            continue
        last_scored = now
        raw = float(s[i])
        eff = 0.0 if g[i] else raw  # what counts towards opening: a gated window never is over
        new_slot = current is None or int(slot_of[i]) != current or not recent
        if new_slot:
            scored += 1
            current = int(slot_of[i])
            recent.append(eff > threshold)
            ranked.append(eff)
            slot_score = raw
        else:
            recent[-1] = recent[-1] or eff > threshold
            ranked[-1] = max(eff, ranked[-1])
            slot_score = max(raw, slot_score)
        score = slot_score
        if len(ranked) >= p.k:
            best = max(best, sorted(ranked)[-p.k])
        if not is_open:
            if sum(recent) >= p.k:
                events.append((i, "open"))
                is_open, below = True, 0
            continue
        if score < lower:
            below += 1 if new_slot else 0
        else:
            below = 0
        if below >= p.resolve_m:
            events.append((i, "resolve"))
            is_open, below = False, 0
            recent.clear()
            current = None
    return StreamAlerts(tuple(events), best, scored)
