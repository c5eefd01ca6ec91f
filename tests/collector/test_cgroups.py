"""Cgroup-path parsing on every kubelet layout (cgroupfs/systemd, v1/v2, QoS classes, runtimes)."""

from __future__ import annotations

import pytest
from minerlens_collector.cgroups import parse_cgroup_path, parse_proc_cgroup

UID = "42d4123d-ae8b-4941-aead-64741a830402"
UID_ = UID.replace("-", "_")
CID = "790a" + "0" * 56 + "a706"


@pytest.mark.parametrize(
    ("path", "qos", "cid", "runtime"),
    [
        (f"/kubepods/burstable/pod{UID}/{CID}", "burstable", CID, ""),
        (f"/kubepods/besteffort/pod{UID}/{CID}", "besteffort", CID, ""),
        (f"/kubepods/pod{UID}/{CID}", "guaranteed", CID, ""),
        (f"/kubepods/burstable/pod{UID}", "burstable", "", ""),
        (
            f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope",
            "burstable",
            CID,
            "cri-containerd",
        ),
        (
            f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/crio-{CID}.scope",
            "besteffort",
            CID,
            "crio",
        ),
        (f"/kubepods.slice/kubepods-pod{UID_}.slice/docker-{CID}.scope", "guaranteed", CID, "docker"),
        (
            f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-conmon-{CID}.scope",
            "burstable",
            CID,
            "crio-conmon",
        ),
        # nested layouts: kind / k3s put kubepods below their own cgroup
        (f"/system.slice/k3s.service/kubepods/besteffort/pod{UID}/{CID}", "besteffort", CID, ""),
        (
            f"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/"
            f"kubelet-kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope",
            "burstable",
            CID,
            "cri-containerd",
        ),
    ],
)
def test_pod_layouts_resolve_to_uid_qos_and_container(path: str, qos: str, cid: str, runtime: str) -> None:
    found = parse_cgroup_path(path)
    assert found is not None
    assert found.pod_uid == UID
    assert found.qos == qos
    assert found.container_id == cid
    assert found.runtime == runtime


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/user.slice/user-0.slice/session-1.scope",
        "/system.slice/containerd.service",
        "/kubepods",
        "/kubepods.slice",
    ],
)
def test_paths_outside_pods_are_none(path: str) -> None:
    assert parse_cgroup_path(path) is None


def test_cgroup_v1_file_uses_any_hierarchy_with_a_pod() -> None:
    text = (
        "12:pids:/\n"
        f"11:memory:/kubepods/burstable/pod{UID}/{CID}\n"
        f"4:cpu,cpuacct:/kubepods/burstable/pod{UID}/{CID}\n"
        "1:name=systemd:/system.slice/containerd.service\n"
    )
    found = parse_proc_cgroup(text)
    assert found is not None
    assert (found.pod_uid, found.container_id) == (UID, CID)


def test_cgroup_v2_single_line() -> None:
    text = (
        f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope\n"
    )
    found = parse_proc_cgroup(text)
    assert found is not None
    assert found.qos == "besteffort"
    assert found.container_id == CID


def test_host_process_is_not_a_pod() -> None:
    assert parse_proc_cgroup("0::/system.slice/sshd.service\n") is None
    assert parse_proc_cgroup("garbage without colons\n") is None
