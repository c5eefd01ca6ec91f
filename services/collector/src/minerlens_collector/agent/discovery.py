"""Find the tasks of every pod on the node by scanning kubelet cgroups."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from minerlens_collector.cgroups import PodCgroup, cgroup_pids, parse_cgroup_path, pod_cgroup_dirs


@dataclass
class PodScan:
    tasks: dict[int, PodCgroup] = field(default_factory=dict)
    pods: set[str] = field(default_factory=set)
    dirs: dict[tuple[str, str], str] = field(default_factory=dict)
    """(pod uid, container id) -> cgroup path relative to the hierarchy root (the same in every hierarchy)"""


def scan_roots(cgroup_root: Path) -> list[Path]:
    """Hierarchies worth scanning: the v2 mount, or the v1 ``pids``/``systemd``/``cpu`` controllers."""
    if (cgroup_root / "cgroup.controllers").exists():
        return [cgroup_root]
    candidates = ["unified", "pids", "systemd", "cpu", "memory"]
    return [cgroup_root / c for c in candidates if (cgroup_root / c).is_dir()]


def scan_pods(cgroup_root: Path) -> PodScan:
    """Tasks of every pod cgroup (first hierarchy that has any kubepods tree wins)."""
    scan = PodScan()
    for root in scan_roots(cgroup_root):
        dirs = pod_cgroup_dirs(root)
        if not dirs:
            continue
        for d in dirs:
            ident = parse_cgroup_path("/" + str(d.relative_to(root)))
            if ident is None:
                continue
            scan.pods.add(ident.pod_uid)
            scan.dirs.setdefault((ident.pod_uid, ident.container_id), str(d.relative_to(root)))
            for tid in cgroup_pids(d):
                scan.tasks[tid] = ident
        break
    return scan
