"""Emulated pods: kubelet-named cgroups on every hierarchy, CPU quota, registry, and clean removal."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from minerlens_collector.agent.pod_registry import LocalPodRegistry
from minerlens_collector.cgroups import read_proc_cgroup
from minerlens_collector.tools.local_pod import REGISTRY_DIR, LocalPod

pytestmark = pytest.mark.kernel


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create cgroups")


def _pod_dirs() -> set[Path]:
    return {p for p in Path("/sys/fs/cgroup").rglob("*") if p.is_dir() and "kubepods" in str(p)}


def test_overlapping_pods_leave_no_cgroup_behind() -> None:
    before = _pod_dirs()
    a = LocalPod("ns", "a")
    a.create()
    b = LocalPod("ns", "b", driver="cgroupfs")
    b.create()
    a.close()  # b still lives below the shared kubepods/burstable directories
    assert any("kubepods" in str(p) for p in _pod_dirs() - before)
    b.close()
    assert _pod_dirs() == before


@pytest.mark.parametrize("driver", ["cgroupfs", "systemd"])
def test_process_in_pod_resolves_and_registry_names_it(driver: str) -> None:
    with LocalPod("shop", "web-1", driver=driver) as pod:  # type: ignore[arg-type]
        sp = pod.spawn(["sleep", "5"])
        found = read_proc_cgroup(sp.pid)
        assert found is not None
        assert (found.pod_uid, found.container_id) == (pod.uid, pod.container_id)
        ref = LocalPodRegistry(REGISTRY_DIR).lookup(pod.uid)
        assert ref is not None
        assert (ref.namespace, ref.name) == ("shop", "web-1")
        assert json.loads((REGISTRY_DIR / f"{pod.uid}.json").read_text())["uid"] == pod.uid
        assert sp.pid in pod.pids()
    assert sp.proc.poll() is not None  # killed with the pod
    assert not (REGISTRY_DIR / f"{pod.uid}.json").exists()


def test_cpu_quota_limits_a_busy_pod() -> None:
    with LocalPod("batch", "spin", cpu_limit=0.25) as pod:
        pod.spawn(["sh", "-c", "while :; do :; done"])
        u0, t0 = pod.cpu_usage_ns(), time.monotonic()
        time.sleep(2.0)
        u1, t1 = pod.cpu_usage_ns(), time.monotonic()
    assert u0 is not None
    assert u1 is not None
    share = (u1 - u0) / 1e9 / (t1 - t0)
    assert 0.2 <= share <= 0.3, share
