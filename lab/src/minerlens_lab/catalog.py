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


def select(pattern: str | None, subset: str | None = None) -> list[Workload]:
    """Workloads whose name, family or label matches a comma-separated list of glob patterns (all when
    ``pattern`` is empty), and that belong to ``subset`` when one is given (``ci``...)."""
    return filter_workloads(list(catalog().values()), pattern, subset)


def filter_workloads(workloads: list[Workload], pattern: str | None, subset: str | None = None) -> list[Workload]:
    pats = [p.strip() for p in (pattern or "").split(",") if p.strip()]
    return [
        w
        for w in workloads
        if (not pats or any(fnmatch.fnmatch(w.name, p) or fnmatch.fnmatch(w.family, p) or w.label == p for p in pats))
        and (subset is None or subset in w.subsets)
    ]


def subsets(workloads: list[Workload]) -> set[str]:
    return {s for w in workloads for s in w.subsets}
