"""How the lab pool paces its miners: share interval, vardiff, job and block timing (named profiles).

``realistic`` (the default) is what open-source Monero pools do: vardiff steers every connection to
one share per 30 s, retargets on a window of several shares, a fresh job every 60-120 s and on each
new block (exponential, 120 s mean, like Monero). ``chatty`` is the lab's old pace, kept as an explicit
variant: one share a second and a job every 10 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class PoolConfig:
    name: str = "realistic"
    share_interval_s: float = 30.0
    """vardiff's target: seconds between two shares of one connection"""
    retarget_s: float | None = None
    """how often vardiff looks at a connection (None: 3 share intervals, 90 s by default)"""
    variance: float = 0.30
    """no retarget while the estimated share interval is within +-30 % of the target"""
    confidence_z: float = 2.5
    """nor while the share count seen is within z Poisson standard deviations of what the target expects"""
    max_step: float = 4.0
    """one retarget multiplies or divides the difficulty by at most this"""
    damping: float = 0.5
    """a retarget moves this far towards the estimate, geometrically (0.5: half-way; 1: all the way)"""
    history_s: float | None = None
    """the hash-rate estimate covers at most this much of the past (None: 20 share intervals)"""
    fast_shares: int | None = None
    """retarget before ``retarget_s`` once this many shares came in (None: 4 per expected share per window)"""
    min_diff: int = 1
    max_diff: int = 1 << 48
    job_interval_s: tuple[float, float] = (60.0, 120.0)
    """a fresh job (new template, same height) after a uniformly random time in this range"""
    block_time_s: float | None = 120.0
    """mean time between simulated new blocks (exponential); None: no blocks"""
    idle_timeout_s: float = 600.0
    """a connection that sent nothing for this long is closed (XMRig sends keepalived every 60 s)"""

    def __post_init__(self) -> None:
        lo, hi = self.job_interval_s
        if not (self.share_interval_s > 0 and 0 < lo <= hi and self.max_step > 1 and self.variance >= 0) or not (
            0 < self.damping <= 1
        ):
            msg = f"inconsistent pool settings: {self}"
            raise ValueError(msg)
        if not (1 <= self.min_diff <= self.max_diff) or (self.block_time_s is not None and self.block_time_s <= 0):
            msg = f"inconsistent pool settings: {self}"
            raise ValueError(msg)

    @property
    def retarget_time(self) -> float:
        return self.retarget_s if self.retarget_s is not None else 3.0 * self.share_interval_s

    @property
    def history_time(self) -> float:
        return self.history_s if self.history_s is not None else 20.0 * self.share_interval_s

    @property
    def fast_share_count(self) -> int:
        if self.fast_shares is not None:
            return max(2, self.fast_shares)
        return max(6, math.ceil(4.0 * self.retarget_time / self.share_interval_s))

    def with_share_interval(self, seconds: float) -> PoolConfig:
        """The same profile aimed at another share interval (retarget window and history scale with it)."""
        return replace(self, share_interval_s=seconds)


REALISTIC = PoolConfig()
CHATTY = PoolConfig(
    name="chatty",
    share_interval_s=1.0,
    retarget_s=4.0,
    history_s=20.0,
    job_interval_s=(10.0, 10.0),
    block_time_s=None,
)
PROFILES: dict[str, PoolConfig] = {p.name: p for p in (REALISTIC, CHATTY)}


def profile(name: str) -> PoolConfig:
    try:
        return PROFILES[name]
    except KeyError:
        msg = f"unknown pool profile {name!r} (have {', '.join(sorted(PROFILES))})"
        raise ValueError(msg) from None
