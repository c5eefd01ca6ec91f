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


def patterns(pattern: str | None) -> list[str]:
    """The globs of a comma-separated ``--workloads`` value."""
    return [p.strip() for p in (pattern or "").split(",") if p.strip()]


def matches(pats: list[str], name: str, family: str, label: str) -> bool:
    """Whether one of ``pats`` matches a workload's name or family (globs) or is its label; none: all match."""
    return not pats or any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(family, p) or label == p for p in pats)


def filter_workloads(workloads: list[Workload], pattern: str | None, subset: str | None = None) -> list[Workload]:
    pats = patterns(pattern)
    return [
        w for w in workloads if matches(pats, w.name, w.family, w.label) and (subset is None or subset in w.subsets)
    ]


def subsets(workloads: list[Workload]) -> set[str]:
    return {s for w in workloads for s in w.subsets}
