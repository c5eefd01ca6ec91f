"""Facts from an XMRig 6.x log file (``--log-file``, ``--no-color``): is it hashing, how fast, shares,
huge pages, threads, RandomX mode and how long its dataset took.

    [2026-12-07 04:20:17.011]  randomx  init dataset algo rx/0 (2 threads) seed fcd450f5447d372a...
    [2026-12-07 04:21:16.204]  randomx  allocated 2336 MB (2080+256) huge pages 100% 1168/1168 +JIT (9044 ms)
    [2026-12-07 04:22:18.195]  randomx  dataset ready (61991 ms)
    [2026-12-07 04:20:17.936]  cpu      READY threads 2/2 (2) huge pages 100% 2/2 memory 4096 KB (13 ms)
    [2026-12-07 04:20:18.650]  cpu      accepted (1/0) diff 6 (97 ms)
    [2026-12-07 04:20:37.957]  miner    speed 10s/60s/15m 50.07 n/a n/a H/s max 70.14 H/s
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\]\s+(\S+)\s+(.*)$")
_VERSION = re.compile(r"XMRig/(\d+\.\d+\.\d+)")
_SPEED = re.compile(r"speed \S+ (\S+) (\S+) (\S+) H/s max (\S+) H/s")
_ACCEPTED = re.compile(r"accepted \((\d+)/(\d+)\) diff (\d+)")
_REJECTED = re.compile(r"rejected \((\d+)/(\d+)\) diff (\d+) \"([^\"]*)\"")
_READY = re.compile(r"READY threads (\d+)/(\d+) \(\d+\) huge pages (\d+)% (\d+)/(\d+)")
_ALLOCATED = re.compile(r"allocated (\d+) MB \((\d+)\+(\d+)\) huge pages (\d+)% (\d+)/(\d+)")
_DATASET = re.compile(r"dataset ready \((\d+) ms\)")
_LIGHT = re.compile(r"fast RandomX mode disabled by config|switching to slow mode")
_NEW_JOB = re.compile(r"new job from \S+ diff (\d+) algo (\S+) height (\d+)")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_xmrig_log(path: Path) -> dict[str, Any]:
    """What the log says; keys only for what it says (an empty dict for a missing log)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    facts: dict[str, Any] = {}
    if found := _VERSION.search(text):
        facts["xmrig_version"] = found.group(1)
    start: datetime | None = None
    speeds: list[float] = []
    accepted = rejected = jobs = 0
    reasons: dict[str, int] = {}
    for line in text.splitlines():
        m = _STAMP.match(line)
        if m is None:
            continue
        when = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f")  # noqa: DTZ007 - XMRig logs local time
        start = start or when
        since = round((when - start).total_seconds(), 3)
        msg = m.group(3)
        if sp := _SPEED.search(msg):
            if (v := _number(sp.group(1))) is not None:
                speeds.append(v)
                facts.setdefault("first_hashrate_s", since)
            if (mx := _number(sp.group(4))) is not None:
                facts["hashrate_max"] = mx
        elif _ACCEPTED.search(msg):
            accepted += 1
            facts.setdefault("first_share_s", since)
        elif rj := _REJECTED.search(msg):
            rejected += 1
            reasons[rj.group(4)] = reasons.get(rj.group(4), 0) + 1
        elif _NEW_JOB.search(msg):
            jobs += 1
        elif rd := _READY.search(msg):
            facts["threads"] = int(rd.group(1))
            facts["threads_wanted"] = int(rd.group(2))
            facts["huge_pages_threads_pct"] = int(rd.group(3))
            facts["ready_s"] = since
        elif al := _ALLOCATED.search(msg):
            facts["randomx_mode"] = "fast"
            facts["randomx_memory_mb"] = int(al.group(1))
            facts["huge_pages_dataset_pct"] = int(al.group(4))
            facts["huge_pages_dataset"] = f"{al.group(5)}/{al.group(6)}"
        elif ds := _DATASET.search(msg):
            facts["dataset_init_s"] = round(int(ds.group(1)) / 1000, 3)
            facts["dataset_ready_s"] = since
        elif _LIGHT.search(msg):
            facts["randomx_mode"] = "light"
    facts["log_accepted"] = accepted
    facts["log_rejected"] = rejected
    facts["log_jobs"] = jobs
    if reasons:
        facts["log_reject_reasons"] = reasons
    if speeds:
        facts["hashrate"] = speeds[-1]
        facts["hashrate_mean"] = round(sum(speeds) / len(speeds), 2)
    facts["hashing"] = bool(speeds) or accepted > 0
    return facts
