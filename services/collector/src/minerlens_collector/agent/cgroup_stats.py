"""Resource counters of a cgroup, on cgroup v2, v1, or a hybrid of both.

The kubelet gives a pod's containers the same relative path in every hierarchy, so one relative path
(``kubepods/burstable/pod<uid>/<cid>``) names a container everywhere. Each counter is read from the
first hierarchy that has it, v2 first:

==============  ==========================================  ==================================================
counter         cgroup v2                                   cgroup v1
==============  ==========================================  ==================================================
cpu_ns          ``cpu.stat`` usage_usec                     ``cpuacct.usage`` (ns)
throttled_ns    ``cpu.stat`` throttled_usec (cpu controller)  ``cpu.stat`` throttled_time (ns)
memory_bytes    ``memory.current``                          ``memory.usage_in_bytes``
hugetlb_bytes   sum of ``hugetlb.<size>.current``           sum of ``hugetlb.<size>.usage_in_bytes``
threads         ``pids.current``                            ``pids.current``
==============  ==========================================  ==================================================

On a hybrid host (v1 controllers plus a controller-less ``unified`` v2 mount) v2's ``cpu.stat`` still
gives usage_usec, the rest comes from v1. A counter no hierarchy has is ``None``.

Throttling is counted by the cgroup whose quota ran out: a pod and its container both carry a quota
(as the kubelet sets them), and either may be the one throttled in a given period. ``throttled_ns``
of a cgroup with cgroups below it is therefore the largest of its own and theirs (never more than the
wall time any part of it was held back).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from minerlens_collector.procfs import INT64_MAX, list_pids, read_small


@dataclass(frozen=True)
class Hierarchy:
    path: Path
    version: Literal[1, 2]
    controllers: frozenset[str]


def find_hierarchies(cgroup_root: Path) -> list[Hierarchy]:
    """The hierarchies under ``cgroup_root``: itself when it is a v2 mount, else its sub-mounts
    (``unified`` v2, and v1 ones named by their controllers: ``cpu,cpuacct``, ``memory``, ``pids``...)."""
    if (cgroup_root / "cgroup.controllers").exists():
        return [Hierarchy(cgroup_root, 2, _controllers(cgroup_root))]
    found: list[Hierarchy] = []
    seen: set[Path] = set()
    try:
        children = sorted(cgroup_root.iterdir())
    except OSError:
        return []
    for d in children:
        try:
            if not d.is_dir() or d.resolve() in seen:
                continue  # cpu -> cpu,cpuacct symlinks
            seen.add(d.resolve())
        except OSError:
            continue
        if (d / "cgroup.controllers").exists():
            found.append(Hierarchy(d, 2, _controllers(d)))
        elif (d / "cgroup.procs").exists():
            found.append(Hierarchy(d, 1, frozenset(d.resolve().name.split(","))))
    return sorted(found, key=lambda h: h.version, reverse=True)  # v2 first


def _controllers(d: Path) -> frozenset[str]:
    raw = read_small(str(d / "cgroup.controllers"))
    return frozenset((raw or b"").decode().split())


@dataclass(frozen=True, slots=True)
class CgroupCounters:
    cpu_ns: int | None = None
    throttled_ns: int | None = None
    memory_bytes: int | None = None
    hugetlb_bytes: int | None = None
    threads: int | None = None


def _stat(raw: bytes | None) -> dict[bytes, int]:
    out: dict[bytes, int] = {}
    for line in (raw or b"").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _int(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    s = raw.strip()
    return int(s) if s.isdigit() else None


def _clip(v: int | None) -> int | None:
    return None if v is None else min(max(v, 0), INT64_MAX)


class CgroupReader:
    """Reads the counters of cgroups given by their path relative to each hierarchy's root."""

    def __init__(self, hierarchies: list[Hierarchy]) -> None:
        self.hierarchies = hierarchies
        self._v2 = [h.path for h in hierarchies if h.version == 2]
        v1: dict[str, Path] = {}
        for h in hierarchies:
            if h.version == 1:
                for c in h.controllers:
                    v1.setdefault(c, h.path)
        self._v1 = v1
        # where to list processes: v2 first, then a v1 hierarchy every pod has
        self._procs_roots = self._v2 + [v1[c] for c in ("pids", "cpu", "cpuacct", "memory", "systemd") if c in v1]
        self._huge_names: dict[str, list[str]] = {}  # per hierarchy: its hugetlb counter files

    @classmethod
    def at(cls, cgroup_root: Path) -> CgroupReader:
        return cls(find_hierarchies(cgroup_root))

    def relpath(self, cgroup_dir: Path) -> str | None:
        """Path of an absolute cgroup directory relative to the hierarchy it is in."""
        for h in self.hierarchies:
            try:
                return str(cgroup_dir.relative_to(h.path))
            except ValueError:
                continue
        return None

    def exists(self, rel: str) -> bool:
        return any(os.path.isdir(f"{root}/{rel}") for root in self._procs_roots)

    def counters(self, rel: str) -> CgroupCounters:
        cpu = throttled = memory = hugetlb = threads = None
        for root in self._v2:
            d = f"{root}/{rel}"
            stat = _stat(read_small(f"{d}/cpu.stat"))
            if cpu is None and b"usage_usec" in stat:
                cpu = stat[b"usage_usec"] * 1000
            if throttled is None and b"throttled_usec" in stat:
                throttled = stat[b"throttled_usec"] * 1000
            if memory is None:
                memory = _int(read_small(f"{d}/memory.current"))
            if hugetlb is None:
                hugetlb = self._hugetlb(str(root), d, ".current")
            if threads is None:
                threads = _int(read_small(f"{d}/pids.current"))
        v1 = self._v1
        if cpu is None and "cpuacct" in v1:
            cpu = _int(read_small(f"{v1['cpuacct']}/{rel}/cpuacct.usage"))
        if throttled is None and "cpu" in v1:
            throttled = _stat(read_small(f"{v1['cpu']}/{rel}/cpu.stat")).get(b"throttled_time")
        if throttled is not None:
            throttled = max(throttled, self._children_throttled(rel))
        if memory is None and "memory" in v1:
            memory = _int(read_small(f"{v1['memory']}/{rel}/memory.usage_in_bytes"))
        if hugetlb is None and "hugetlb" in v1:
            hugetlb = self._hugetlb(str(v1["hugetlb"]), f"{v1['hugetlb']}/{rel}", ".usage_in_bytes")
        if threads is None and "pids" in v1:
            threads = _int(read_small(f"{v1['pids']}/{rel}/pids.current"))
        return CgroupCounters(_clip(cpu), _clip(throttled), _clip(memory), _clip(hugetlb), _clip(threads))

    def _children_throttled(self, rel: str, depth: int = 2) -> int:
        """Largest throttled time of the cgroups up to ``depth`` levels below ``rel`` (0: none)."""
        root, v2 = None, False
        for r in self._v2:
            if os.path.isfile(f"{r}/{rel}/cpu.stat"):
                root, v2 = r, True
                break
        if root is None and "cpu" in self._v1:
            root = self._v1["cpu"]
        if root is None:
            return 0
        best = 0
        level = [f"{root}/{rel}"]
        for _ in range(depth):
            below: list[str] = []
            for d in level:
                try:
                    with os.scandir(d) as it:
                        below += [e.path for e in it if e.is_dir(follow_symlinks=False)]
                except OSError:
                    continue
            for d in below:
                stat = _stat(read_small(f"{d}/cpu.stat"))
                value = stat.get(b"throttled_usec", 0) * 1000 if v2 else stat.get(b"throttled_time", 0)
                best = max(best, value)
            level = below
        return best

    def processes(self, rel: str, limit: int = 1 << 16) -> list[int] | None:
        """Process ids (tgids) in the cgroup and every cgroup below it; ``None`` when it is gone."""
        for root in self._procs_roots:
            top = f"{root}/{rel}"
            if not os.path.isdir(top):
                continue
            pids: list[int] = []
            stack = [top]
            while stack and len(pids) < limit:
                d = stack.pop()
                pids += list_pids(f"{d}/cgroup.procs")
                try:
                    with os.scandir(d) as it:
                        stack += [e.path for e in it if e.is_dir(follow_symlinks=False)]
                except OSError:
                    continue
            return list(dict.fromkeys(pids))[:limit]
        return None

    def _hugetlb(self, root: str, d: str, suffix: str) -> int | None:
        """Sum of ``hugetlb.<size><suffix>`` (the reservation counters ``.rsvd.*`` left out)."""
        names = self._huge_names.get(root)
        if names is None:
            try:
                names = sorted(
                    n for n in os.listdir(d) if n.startswith("hugetlb.") and n.endswith(suffix) and ".rsvd." not in n
                )
            except OSError:
                return None
            if not names:
                return None  # the controller is not enabled here; maybe in another cgroup
            self._huge_names[root] = names
        values = [_int(read_small(f"{d}/{n}")) for n in names]
        if all(v is None for v in values):
            return None
        return sum(v for v in values if v is not None)
