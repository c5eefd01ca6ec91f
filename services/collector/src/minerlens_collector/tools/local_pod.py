"""Emulated pods: real programs run inside cgroups named exactly like a kubelet's.

On a real node the kubelet creates ``kubepods/<qos>/pod<uid>/<container-id>`` (cgroupfs driver) or
``kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/cri-containerd-<id>.scope``
(systemd driver). ``LocalPod`` makes the same directories in every writable hierarchy (cgroup v2,
and on v1 the cpu, cpuacct, memory, pids and name=systemd hierarchies), so the collector resolves
its processes exactly as it would on a node. Everything it creates is removed on ``close()``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from minerlens_core.errors import CaptureError
from minerlens_core.syscalls import host_arch, syscall_number

from minerlens_collector.cgroups import QoS, cgroup_pids

log = logging.getLogger(__name__)

Driver = Literal["cgroupfs", "systemd"]
_V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "name=systemd")
_CFS_PERIOD_US = 100_000
REGISTRY_DIR = Path(os.environ.get("MINERLENS_LOCAL_POD_REGISTRY", "/run/minerlens/pods"))
"""Emulated pods announce namespace/name here (as a kubelet's API would); see ``LocalPodRegistry``."""


@dataclass(frozen=True)
class Hierarchy:
    mount: Path
    version: Literal[1, 2]
    controllers: frozenset[str]


def cgroup_hierarchies(mounts: Path = Path("/proc/self/mounts")) -> list[Hierarchy]:
    """Mounted cgroup hierarchies that a local pod is created in."""
    found: list[Hierarchy] = []
    seen: set[frozenset[str]] = set()
    for line in mounts.read_text().splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        fstype, mnt, opts = parts[2], Path(parts[1]), set(parts[3].split(","))
        if fstype == "cgroup2":
            found.append(Hierarchy(mnt, 2, frozenset()))
        elif fstype == "cgroup":
            ctrls = frozenset(o for o in opts if o in _V1_CONTROLLERS)
            if ctrls and ctrls not in seen:
                seen.add(ctrls)
                found.append(Hierarchy(mnt, 1, ctrls))
    return found


def pod_cgroup_relpath(pod_uid: str, container_id: str, qos: QoS, driver: Driver) -> list[str]:
    """Path components of a container cgroup, as the kubelet names them."""
    if driver == "cgroupfs":
        parts = ["kubepods"] if qos == "guaranteed" else ["kubepods", qos]
        return [*parts, f"pod{pod_uid}", container_id]
    uid = pod_uid.replace("-", "_")
    if qos == "guaranteed":
        parts = ["kubepods.slice", f"kubepods-pod{uid}.slice"]
    else:
        parts = ["kubepods.slice", f"kubepods-{qos}.slice", f"kubepods-{qos}-pod{uid}.slice"]
    return [*parts, f"cri-containerd-{container_id}.scope"]


def container_id_for(namespace: str, name: str, salt: str) -> str:
    return hashlib.sha256(f"{namespace}/{name}/{salt}".encode()).hexdigest()


@dataclass
class LocalPod:
    """A pod emulated by cgroups. Use as a context manager; ``close()`` kills what is left and cleans up."""

    namespace: str
    name: str
    qos: QoS = "burstable"
    driver: Driver = "cgroupfs"
    cpu_limit: float | None = None
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    container_id: str = ""
    hierarchies: list[Hierarchy] = field(default_factory=cgroup_hierarchies)
    _created: list[Path] = field(default_factory=list, init=False)
    _leaves: list[Path] = field(default_factory=list, init=False)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if not self.container_id:
            self.container_id = container_id_for(self.namespace, self.name, self.uid)
        if not self.hierarchies:
            msg = "no cgroup hierarchy is mounted; cannot emulate a pod"
            raise CaptureError(msg)

    def __enter__(self) -> LocalPod:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def cgroup_path(self) -> str:
        return "/" + "/".join(pod_cgroup_relpath(self.uid, self.container_id, self.qos, self.driver))

    def create(self) -> None:
        rel = pod_cgroup_relpath(self.uid, self.container_id, self.qos, self.driver)
        try:
            for h in self.hierarchies:
                d = h.mount
                for part in rel:
                    d = d / part
                    if not d.exists():
                        d.mkdir()
                        self._created.append(d)
                        if self.uid.replace("-", "_") not in str(d) and self.uid not in str(d):
                            _remember_created(d)  # a shared level (kubepods, QoS): the last pod out removes it
                self._leaves.append(d)
        except OSError as exc:
            self.close()
            msg = f"cannot create pod cgroup {self.cgroup_path}: {exc} (root and writable cgroupfs needed)"
            raise CaptureError(msg) from exc
        if self.cpu_limit is not None:
            self._set_cpu_limit(self.cpu_limit)
        self._register()

    def _register(self) -> None:
        try:
            REGISTRY_DIR.mkdir(parents=True, exist_ok=True)
            doc = {
                "uid": self.uid,
                "namespace": self.namespace,
                "name": self.name,
                "labels": {"minerlens/emulated": "true"},
            }
            (REGISTRY_DIR / f"{self.uid}.json").write_text(json.dumps(doc))
        except OSError as exc:
            log.debug("pod registry not writable: %s", exc)

    def _set_cpu_limit(self, cores: float) -> None:
        quota = max(1000, int(cores * _CFS_PERIOD_US))
        for h, leaf in zip(self.hierarchies, self._leaves, strict=True):
            if h.version == 1 and "cpu" in h.controllers:
                pod_dir = leaf.parent
                for d in (pod_dir, leaf):
                    (d / "cpu.cfs_period_us").write_text(str(_CFS_PERIOD_US))
                    (d / "cpu.cfs_quota_us").write_text(str(quota))
                return
            if h.version == 2 and "cpu" in (h.mount / "cgroup.controllers").read_text().split():
                (leaf / "cpu.max").write_text(f"{quota} {_CFS_PERIOD_US}")
                return
        msg = "no cpu controller available to throttle the pod"
        raise CaptureError(msg)

    def enter_current_process(self) -> None:
        """Move the calling process into the pod (meant for ``preexec_fn``)."""
        for leaf in self._leaves:
            (leaf / "cgroup.procs").write_text("0")

    def spawn(
        self,
        argv: Sequence[str],
        *,
        gated: bool = False,
        env: dict[str, str] | None = None,
        stdout: int | None = subprocess.DEVNULL,
        stderr: int | None = subprocess.DEVNULL,
        cwd: str | Path | None = None,
    ) -> Spawned:
        """Start ``argv`` inside the pod.

        With ``gated=True`` the program is held before ``exec`` (a ``sh`` waiting on a pipe) until
        ``Spawned.release()``: the caller can start tracing its pid first and so see every syscall.
        """
        if not self._leaves:
            self.create()
        gate_r = gate_w = -1
        cmd = list(argv)
        stdin: int = subprocess.DEVNULL
        if gated:
            gate_r, gate_w = os.pipe()
            # the gate reads one line from the pipe on stdin, then execs with stdin from /dev/null
            cmd = ["/bin/sh", "-c", 'read _; exec "$@" </dev/null', "minerlens-gate", *argv]
            stdin = gate_r
        try:
            proc = subprocess.Popen(
                cmd,
                preexec_fn=self.enter_current_process,
                env=env,
                stdout=stdout,
                stderr=stderr,
                stdin=stdin,
                cwd=cwd,
                start_new_session=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            msg = f"cannot start {argv[0]!r} in pod {self.namespace}/{self.name}: {exc}"
            raise CaptureError(msg) from exc
        finally:
            if gate_r >= 0:
                os.close(gate_r)
        self._procs.append(proc)
        spawned = Spawned(proc, gate_w)
        if gated:
            spawned.wait_at_gate()
        return spawned

    def pids(self) -> list[int]:
        """Thread ids currently in the pod's container cgroup."""
        return cgroup_pids(self._leaves[0]) if self._leaves else []

    def cpu_usage_ns(self) -> int | None:
        """CPU time consumed by the pod so far (cpuacct on v1, cpu.stat on v2)."""
        for h, leaf in zip(self.hierarchies, self._leaves, strict=False):
            if h.version == 1 and "cpuacct" in h.controllers:
                return int((leaf / "cpuacct.usage").read_text())
            stat = leaf / "cpu.stat"
            if h.version == 2 and stat.exists():
                for line in stat.read_text().splitlines():
                    if line.startswith("usage_usec "):
                        return int(line.split()[1]) * 1000
        return None

    def close(self) -> None:
        """Kill every process left in the pod, then remove the cgroups this object created."""
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            left = [p for leaf in self._leaves for p in cgroup_pids(leaf)]
            if not left:
                break
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        for d in reversed(self._created):
            if d.exists() and any(c.is_dir() for c in d.iterdir()):
                continue  # another pod still lives below this level; the last pod out removes it
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
            else:
                log.warning("could not remove cgroup %s", d)
        self._created.clear()
        self._leaves.clear()
        _remove_abandoned()
        (REGISTRY_DIR / f"{self.uid}.json").unlink(missing_ok=True)


def _created_list() -> Path:
    return REGISTRY_DIR / ".created-cgroups"


def _remember_created(d: Path) -> None:
    """Record a cgroup directory some LocalPod made (pods in other processes may outlive its maker)."""
    with contextlib.suppress(OSError):
        REGISTRY_DIR.mkdir(parents=True, exist_ok=True)
        with _created_list().open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.write(f"{d}\n")


def _remove_abandoned() -> None:
    """Remove the shared levels (``kubepods``, ``kubepods/<qos>``...) LocalPods created, once no pod is left."""
    with contextlib.suppress(OSError), _created_list().open("r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        paths = sorted({Path(x) for x in f.read().split()}, key=lambda p: len(p.parts), reverse=True)
        kept = []
        for d in paths:
            if not d.exists():
                continue
            if not any(c.is_dir() for c in d.iterdir()):
                with contextlib.suppress(OSError):
                    d.rmdir()
                    continue
            kept.append(d)
        f.seek(0)
        f.truncate()
        f.writelines(f"{d}\n" for d in kept)


@dataclass
class Spawned:
    proc: subprocess.Popen[bytes]
    gate_fd: int = -1

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_at_gate(self, timeout_s: float = 5.0) -> None:
        """Block until the gate shell sits in ``read`` (its start-up syscalls are over), so that
        tracing started now sees only the program and the gate's final ``read``/``execve``."""
        read_nr = syscall_number("read", host_arch())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                current = Path(f"/proc/{self.pid}/syscall").read_text().split()
            except OSError:
                current = []
            if current and current[0] == str(read_nr):
                return
            time.sleep(0.002)
        msg = f"gated process {self.pid} did not reach its gate in {timeout_s}s"
        raise CaptureError(msg)

    def release(self) -> None:
        """Let a gated program ``exec``."""
        if self.gate_fd >= 0:
            os.write(self.gate_fd, b"\n")
            os.close(self.gate_fd)
            self.gate_fd = -1
