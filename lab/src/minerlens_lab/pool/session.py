"""What the pool keeps per login and per connection: ``LoginStats`` (a login's counters, as ``stats``
returns them), ``Session`` (one logged-in connection: its algorithm, vardiff and recent jobs) and the
``start=N`` password option (``start_difficulty``)."""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from minerlens_lab.miners.pow import Algorithm
from minerlens_lab.pool.jobs import Job
from minerlens_lab.pool.vardiff import Vardiff

_SHARE_TIMES_KEPT = 512
_START = re.compile(r"(?:^|[;,\s])start=(\d{1,15})(?:$|[;,\s])")


@dataclass
class LoginStats:
    accepted: int = 0
    rejected: int = 0
    connections: int = 0
    keepalives: int = 0
    jobs: int = 0
    retargets: int = 0
    hashes: int = 0
    """sum of the difficulty of the accepted shares: the expected number of hashes behind them"""
    difficulty: int = 0
    first_login: float | None = None
    last_share: float | None = None
    share_times: deque[float] = field(default_factory=lambda: deque(maxlen=_SHARE_TIMES_KEPT))
    """seconds after the first login of each accepted share"""
    difficulties: list[tuple[float, int]] = field(default_factory=list)
    """(seconds after the first login, difficulty) of the last connection's start and retargets"""
    algo: str = ""
    reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        span = (self.last_share - self.first_login) if self.first_login and self.last_share else 0.0
        times = list(self.share_times)
        mean_interval = (times[-1] - times[0]) / (len(times) - 1) if len(times) >= 2 else None
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "connections": self.connections,
            "keepalives": self.keepalives,
            "jobs": self.jobs,
            "retargets": self.retargets,
            "hashes": self.hashes,
            "hashrate": round(self.hashes / span, 1) if span > 0 else 0.0,
            "difficulty": self.difficulty,
            "difficulties": [[round(t, 3), d] for t, d in self.difficulties],
            "share_times": [round(t, 3) for t in times],
            "mean_share_interval": round(mean_interval, 2) if mean_interval is not None else None,
            "algo": self.algo,
            "reasons": dict(self.reasons),
        }


@dataclass
class Session:
    sid: str
    login: str
    algo: Algorithm
    writer: asyncio.StreamWriter
    vardiff: Vardiff
    last_seen: float
    jobs: OrderedDict[str, Job] = field(default_factory=OrderedDict)
    seen: set[tuple[str, str]] = field(default_factory=set)


def start_difficulty(password: str) -> int | None:
    """``start=N`` in a login's password, if any."""
    found = _START.search(password)
    return int(found.group(1)) if found else None
