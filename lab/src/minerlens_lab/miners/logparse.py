"""Facts from the C miner's log: hash rate (XMRig-style ``speed`` lines, or cpuminer-style per-thread scan
lines), hashes, and the page kind of each large allocation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_SPEED = re.compile(r"speed \S+ ([\d.]+) ")
_SCAN = re.compile(r"thread (\d+): (\d+) hashes, ([\d.]+) khash/s")
_SUMMARY = re.compile(r"summary: hashes (\d+) in ([\d.]+) s \(([\d.]+) H/s\)")
_MEMORY = re.compile(r"memory: (.+?) pages=(\w+)")
_PROFILE = re.compile(r"minerlens-miner \S+ profile (\w+)")


def parse_miner_log(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    facts: dict[str, Any] = {}
    if found := _PROFILE.search(text):
        facts["miner_profile"] = found.group(1)
    speeds = _SPEED.findall(text)
    if speeds:
        facts["hashrate"] = float(speeds[-1])
    per_thread: dict[str, float] = {}
    for thread, _, khs in _SCAN.findall(text):
        per_thread[thread] = float(khs) * 1e3
    if per_thread and "hashrate" not in facts:
        facts["hashrate"] = round(sum(per_thread.values()), 1)
    summary = _SUMMARY.search(text)
    if summary:
        facts["hashes"] = int(summary.group(1))
    pages: dict[str, str] = {}
    for what, kind in _MEMORY.findall(text):
        pages[what] = kind
    if pages:
        facts["huge_pages"] = pages
        facts["hugetlb"] = any(k == "hugetlb" for k in pages.values())
    facts["log_accepted"] = len(re.findall(r"\baccepted\b", text))
    return facts
