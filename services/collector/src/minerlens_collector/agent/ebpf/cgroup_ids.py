"""Cgroup v2 ids of the pods' cgroups: what ``bpf_get_current_cgroup_id()`` returns for their tasks.

The id of a v2 cgroup is its directory's inode number on the cgroup2 mount (kernfs node id, 64-bit). On a
hybrid host (v1 controllers, cgroup2 at ``/sys/fs/cgroup/unified``) a task is in a v2 cgroup too: kubelet's
systemd driver and ``minerlens pod run`` put pods' tasks there; a pod whose cgroups exist only in v1
hierarchies has no v2 id of its own and is reported as ``missing`` (the eBPF source cannot see it).
"""

from __future__ import annotations

import os
from pathlib import Path

StreamKey = tuple[str, str]


def v2_root(cgroup_root: Path) -> Path | None:
    """The cgroup2 mount at or below ``cgroup_root`` (the root itself on a pure v2 host, ``unified`` on hybrid)."""
    for cand in (cgroup_root, cgroup_root / "unified"):
        if (cand / "cgroup.controllers").exists():
            return cand
    return None


def stream_cgroup_ids(root: Path, dirs: dict[StreamKey, str]) -> tuple[dict[int, StreamKey], list[StreamKey]]:
    """cgroup id -> stream for every directory at and below each stream's cgroup (a deeper stream's own
    directories win over its pod's), and the streams that have no directory under ``root``."""
    ids: dict[int, StreamKey] = {}
    missing: list[StreamKey] = []
    for key, rel in sorted(dirs.items(), key=lambda kv: kv[1].count("/")):
        top = root / rel
        try:
            ids[os.stat(top).st_ino] = key
        except OSError:
            missing.append(key)
            continue
        for dirpath, subdirs, _ in os.walk(top):
            for d in subdirs:
                try:
                    ids[os.stat(os.path.join(dirpath, d)).st_ino] = key
                except OSError:  # removed meanwhile
                    continue
    return ids, missing
