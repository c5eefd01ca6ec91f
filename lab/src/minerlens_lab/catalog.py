"""The lab's catalog: every miner and benign workload, by name."""

from __future__ import annotations

import fnmatch

from minerlens_lab.workload import Workload


def catalog() -> dict[str, Workload]:
    from minerlens_lab.benign import benign_workloads
    from minerlens_lab.miners import miner_workloads

    out: dict[str, Workload] = {}
    for w in [*miner_workloads(), *benign_workloads()]:
        if w.name in out:
            msg = f"duplicate workload name {w.name!r}"
            raise ValueError(msg)
        out[w.name] = w
    return out


def select(pattern: str | None) -> list[Workload]:
    """Workloads whose name, family or label matches a comma-separated list of glob patterns."""
    all_ = catalog()
    if not pattern:
        return list(all_.values())
    pats = [p.strip() for p in pattern.split(",") if p.strip()]
    return [
        w
        for w in all_.values()
        if any(fnmatch.fnmatch(w.name, p) or fnmatch.fnmatch(w.family, p) or w.label == p for p in pats)
    ]
