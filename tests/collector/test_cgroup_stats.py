"""Cgroup counter files as the kernel lays them out, for layouts this host does not mount.

This host is hybrid (v1 controllers + a controller-less v2): ``test_resources.py`` reads its real
cgroups. A pure cgroup v2 host (cpu, memory, pids, hugetlb on v2) and a v1 host with the common
``cpu,cpuacct`` mount are written here as files with the kernel's formats and read back.
"""

from __future__ import annotations

from pathlib import Path

from minerlens_collector.agent.cgroup_stats import CgroupReader, find_hierarchies

REL = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podx.slice"
CTR = "cri-containerd-abc.scope"


def _write(d: Path, files: dict[str, str]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)


def _v2_stat(usage_us: int, throttled_us: int) -> str:
    return (
        f"usage_usec {usage_us}\nuser_usec 1\nsystem_usec 2\ncore_sched.force_idle_usec 0\n"
        f"nr_periods 10\nnr_throttled 4\nthrottled_usec {throttled_us}\nnr_bursts 0\nburst_usec 0\n"
    )


def test_pure_v2(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _write(root, {"cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n", "cgroup.procs": ""})
    pod = root / REL
    _write(
        pod,
        {
            "cpu.stat": _v2_stat(5_000_000, 100),
            "memory.current": "123456789\n",
            "pids.current": "7\n",
            "hugetlb.2MB.current": str(2 << 21) + "\n",
            "hugetlb.1GB.current": "0\n",
            "hugetlb.2MB.rsvd.current": str(9 << 21) + "\n",  # reservations: not usage
            "cgroup.procs": "11\n12\n",
        },
    )
    _write(pod / CTR, {"cpu.stat": _v2_stat(4_000_000, 700_000), "cgroup.procs": "13\n"})
    hs = find_hierarchies(root)
    assert [(h.version, "cpu" in h.controllers) for h in hs] == [(2, True)]
    reader = CgroupReader(hs)
    c = reader.counters(REL)
    assert c.cpu_ns == 5_000_000_000
    assert c.throttled_ns == 700_000_000  # the container's quota was the one that ran out
    assert c.memory_bytes == 123456789
    assert c.hugetlb_bytes == 2 << 21
    assert c.threads == 7
    assert sorted(reader.processes(REL) or []) == [11, 12, 13]
    assert reader.processes(REL + "/gone") is None
    assert reader.relpath(pod / CTR) == f"{REL}/{CTR}"


def test_v1_with_a_shared_cpu_cpuacct_mount(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    both = root / "cpu,cpuacct"
    _write(both, {"cgroup.procs": ""})
    (root / "cpu").symlink_to("cpu,cpuacct")
    (root / "cpuacct").symlink_to("cpu,cpuacct")
    for ctrl in ("memory", "pids", "hugetlb"):
        _write(root / ctrl, {"cgroup.procs": ""})
    rel = "kubepods/burstable/podx/abc"
    _write(both / rel, {"cpuacct.usage": "987654321\n", "cpu.stat": "nr_periods 5\nthrottled_time 4242\n"})
    _write(root / "memory" / rel, {"memory.usage_in_bytes": "4096\n"})
    _write(root / "pids" / rel, {"pids.current": "3\n", "cgroup.procs": "42\n"})
    _write(root / "hugetlb" / rel, {"hugetlb.2MB.usage_in_bytes": "2097152\n", "hugetlb.1GB.usage_in_bytes": "0\n"})
    hs = find_hierarchies(root)
    assert sorted(",".join(sorted(h.controllers)) for h in hs) == ["cpu,cpuacct", "hugetlb", "memory", "pids"]
    reader = CgroupReader(hs)
    c = reader.counters(rel)
    assert (c.cpu_ns, c.throttled_ns, c.memory_bytes, c.hugetlb_bytes, c.threads) == (
        987654321,
        4242,
        4096,
        2097152,
        3,
    )
    assert reader.processes(rel) == [42]


def test_unreadable_or_hostile_values_are_none(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _write(root, {"cgroup.controllers": "cpu memory pids\n"})
    _write(root / "x", {"cpu.stat": "usage_usec -5\n", "memory.current": "max\n", "pids.current": "9" * 40 + "\n"})
    c = CgroupReader.at(root).counters("x")
    assert c.cpu_ns is None
    assert c.memory_bytes is None
    assert c.threads == (1 << 63) - 1  # clipped to the contract's range, never an error
    assert c.hugetlb_bytes is None
