"""Variable difficulty for one connection: steer it to one share per ``share_interval_s``, then stay.

The hash rate is estimated from the shares of the recent past (``history_time``): the sum of their
difficulties (the hashes they stand for) over the time covered. Shares found at an older difficulty
still count, so the estimate improves across retargets. A retarget is considered every
``retarget_time`` seconds, or earlier once ``fast_share_count`` shares arrived (a start far too easy
is corrected within a dozen shares, not after minutes of chatter). The difficulty moves only when

* the estimated share interval is outside the ``variance`` band around the target, and
* the number of shares seen differs from the number the target predicts by more than
  ``confidence_z`` Poisson standard deviations (a few shares say little: no move on noise),

and then half-way towards the estimate (geometrically, ``damping``: one unlucky window does not throw
it far off), by at most ``max_step`` either way, within ``[min_diff, max_diff]``. No shares at all lower
the difficulty only when their absence is itself significant (e.g. no share in 4.5 intervals).
This is the node-stratum-pool / cryptonote-pool scheme (targetTime, retargetTime, variancePercent,
maxJump) with a significance test instead of a fixed share buffer.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from minerlens_lab.pool.config import PoolConfig

_CHANGES_KEPT = 64


@dataclass
class Vardiff:
    config: PoolConfig
    diff: int
    started: float
    shares: deque[tuple[float, int]] = field(default_factory=deque)
    """(time, difficulty) of the shares in the history window"""
    changes: list[tuple[float, int]] = field(default_factory=list)
    """(time, new difficulty) of every retarget (the first entry: the start), the last 64"""
    last_check: float = 0.0
    since_check: int = 0
    retargets: int = 0

    def __post_init__(self) -> None:
        self.diff = self._clamp(self.diff)
        self.last_check = self.started
        self.changes.append((self.started, self.diff))

    def _clamp(self, diff: float) -> int:
        return int(min(max(diff, self.config.min_diff), self.config.max_diff))

    def record_share(self, now: float, diff: int) -> None:
        self.shares.append((now, diff))
        self.since_check += 1

    def due(self, now: float) -> bool:
        """Whether a retarget should be considered now."""
        return self.since_check >= self.config.fast_share_count or now - self.last_check >= self.config.retarget_time

    def expected_shares(self, start: float, now: float, hashrate: float) -> float:
        """Shares a miner hashing at ``hashrate`` would have found in ``[start, now]``, given the
        difficulties that were in force."""
        total = 0.0
        for i, (t, diff) in enumerate(self.changes):
            end = self.changes[i + 1][0] if i + 1 < len(self.changes) else now
            a, b = max(t, start), min(end, now)
            if b > a:
                total += (b - a) * hashrate / diff
        return total

    def retarget(self, now: float) -> int | None:
        """Consider a retarget; returns the new difficulty if it changed."""
        cfg = self.config
        self.last_check, self.since_check = now, 0
        start = max(self.started, now - cfg.history_time)
        while self.shares and self.shares[0][0] < start:
            self.shares.popleft()
        span = now - start
        if span <= 0:
            return None
        target_rate = self.diff / cfg.share_interval_s  # the rate at which this difficulty is just right
        expected = self.expected_shares(start, now, target_rate)
        seen = len(self.shares)
        if abs(seen - expected) <= cfg.confidence_z * math.sqrt(max(expected, 1.0)):
            return None
        # no share in the span: the rate is at most one share's worth, so that is the gentlest cut
        hashrate = sum(d for _, d in self.shares) / span if seen else self.diff / max(span, cfg.share_interval_s)
        interval = self.diff / hashrate if hashrate > 0 else math.inf
        lo, hi = cfg.share_interval_s * (1 - cfg.variance), cfg.share_interval_s * (1 + cfg.variance)
        if lo <= interval <= hi:
            return None
        wanted = self.diff * (hashrate * cfg.share_interval_s / self.diff) ** cfg.damping
        lo_step, hi_step = math.ceil(self.diff / cfg.max_step), math.floor(self.diff * cfg.max_step)
        new = self._clamp(min(max(wanted, lo_step), hi_step))
        if new == self.diff:
            return None
        self.diff = new
        self.retargets += 1
        self.changes.append((now, new))
        if len(self.changes) > _CHANGES_KEPT:
            del self.changes[: len(self.changes) - _CHANGES_KEPT]
        return new
