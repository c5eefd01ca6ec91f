"""Pod and container identity from cgroup paths, as a kubelet lays them out.

Layouts understood (matched anywhere in the path, so nested runtimes such as k3s/kind also work):

* cgroupfs driver:  ``/kubepods/<qos>/pod<uid>/<container-id>``  and Guaranteed ``/kubepods/pod<uid>/<cid>``
* systemd driver:   ``/kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_with_underscores>.slice/
  <cri-containerd-|crio-|docker-><cid>.scope``, Guaranteed ``.../kubepods-pod<uid>.slice/...``

``/proc/<pid>/cgroup`` has one ``0::<path>`` line on cgroup v2 and one line per hierarchy on v1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

QoS = Literal["guaranteed", "burstable", "besteffort"]

_POD_RE = re.compile(
    r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?(?:/|$)"
)
_QOS_RE = re.compile(r"kubepods[-/](burstable|besteffort)(?:\.slice)?[-/]")
_CONTAINER_RE = re.compile(r"^(?:(cri-containerd|crio|docker)-)?([0-9a-f]{64})(?:\.scope)?$")
_CONMON_RE = re.compile(r"^crio-conmon-([0-9a-f]{64})\.scope$")


@dataclass(frozen=True, slots=True)
class PodCgroup:
    """Where a cgroup path places a process: a pod (uid, QoS) and possibly one of its containers."""

    pod_uid: str
    qos: QoS
    container_id: str = ""
    runtime: str = ""


def parse_cgroup_path(path: str) -> PodCgroup | None:
    """Pod identity of a cgroup path, or ``None`` if the path is not inside a Kubernetes pod."""
    if "kubepods" not in path:
        return None
    pod = _POD_RE.search(path)
    if pod is None:
        return None
    uid = pod.group(1).replace("_", "-")
    qos_match = _QOS_RE.search(path)
    qos: QoS = "guaranteed" if qos_match is None else qos_match.group(1)  # type: ignore[assignment]
    rest = path[pod.end() :].strip("/")
    if not rest:
        return PodCgroup(uid, qos)
    leaf = rest.split("/", 1)[0]
    conmon = _CONMON_RE.match(leaf)
    if conmon:
        return PodCgroup(uid, qos, conmon.group(1), "crio-conmon")
    container = _CONTAINER_RE.match(leaf)
    if container is None:
        return PodCgroup(uid, qos)
    runtime = container.group(1) or ""
    return PodCgroup(uid, qos, container.group(2), runtime)


def parse_proc_cgroup(text: str) -> PodCgroup | None:
    """Pod identity from the content of ``/proc/<pid>/cgroup`` (v1 or v2)."""
    for line in text.split("\n"):
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        found = parse_cgroup_path(parts[2])
        if found is not None:
            return found
    return None


def read_proc_cgroup(pid: int, proc: Path = Path("/proc")) -> PodCgroup | None:
    """Pod identity of a live task, ``None`` when outside pods or already gone."""
    try:
        text = (proc / str(pid) / "cgroup").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return parse_proc_cgroup(text)


def pod_cgroup_dirs(root: Path) -> list[Path]:
    """Container (or pod-level) cgroup directories below every ``kubepods`` tree under ``root``.

    ``root`` is one hierarchy (cgroup v2 mount, or one v1 controller such as ``pids``).
    """
    found: list[Path] = []
    for top in sorted(root.glob("**/kubepods*")):
        if not top.is_dir() or (top.parent.name.startswith("kubepods")):
            continue
        for d in top.rglob("*"):
            if d.is_dir() and parse_cgroup_path("/" + str(d.relative_to(root))) is not None:
                found.append(d)
    return found


def cgroup_pids(cgroup_dir: Path) -> list[int]:
    """Thread ids in a cgroup (``cgroup.threads`` on v2 when present, else ``tasks``/``cgroup.procs``)."""
    for name in ("cgroup.threads", "tasks", "cgroup.procs"):
        f = cgroup_dir / name
        try:
            return [int(x) for x in f.read_text().split()]
        except (FileNotFoundError, OSError, ValueError):
            continue
    return []
