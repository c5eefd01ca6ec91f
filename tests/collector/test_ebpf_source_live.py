"""Live in-kernel aggregation (services/collector/bpf + agent/ebpf) against real workloads in emulated pods.

Counts are exact (the kernel counts every syscall of a filtered-in cgroup; nothing is sampled), so the
tolerance on counts is zero; n-gram totals follow from them exactly. Skips only when this kernel cannot load
the program (no BTF, no permission, no cgroup2, no toolchain to build it); fails instead under
MINERLENS_REQUIRE_KERNEL=1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest
from minerlens_collector.agent.discovery import scan_pods
from minerlens_collector.agent.ebpf import AggregateWindow, EbpfSource
from minerlens_collector.agent.ebpf.layout import NR_OTHER
from minerlens_collector.tools.local_pod import LocalPod
from minerlens_core.syscalls import host_arch, syscall_number

from tests.kernel import CGROUP_ROOT, require_ebpf
from tests.programs import build

pytestmark = [pytest.mark.kernel]

GETPPID = syscall_number("getppid", host_arch())


@pytest.fixture(scope="module", autouse=True)
def _kernel_can_load_bpf() -> None:
    require_ebpf()


@pytest.fixture
def source() -> Iterator[EbpfSource]:
    src = EbpfSource(CGROUP_ROOT, sample_budget=64)
    src.start()
    try:
        yield src
    finally:
        src.stop()


def _watch(src: EbpfSource, pod: LocalPod) -> tuple[str, str]:
    scan = scan_pods(CGROUP_ROOT)  # only this test's pod: other pods may run on a shared machine
    src.set_streams({k: d for k, d in scan.dirs.items() if k[0] == pod.uid})
    key = (pod.uid, pod.container_id)
    assert key in scan.dirs
    assert not src.missing
    return key


def _run_in_pod(src: EbpfSource, pod: LocalPod, argv: list[str]) -> tuple[int, AggregateWindow]:
    _watch(src, pod)
    src.read_window()  # start from an empty window
    sp = pod.spawn(argv)  # no gate: the gate shell would add its own getppid
    assert sp.proc.wait(timeout=60) == 0
    return sp.pid, src.read_window()


def _thread_calls(win: AggregateWindow, tgid: int) -> dict[int, int]:
    c = win.data.counts[win.data.counts["tgid"] == tgid]
    return {int(t): int(c["n"][c["tid"] == t].sum()) for t in np.unique(c["tid"])}


def test_counts_are_exact_and_ngrams_follow_threads(source: EbpfSource) -> None:
    n, threads = 20_000, 3
    with LocalPod("ebpf", "exact") as pod:
        pid, win = _run_in_pod(source, pod, [str(build("getppid_loop")), str(n), str(threads)])
        key = (pod.uid, pod.container_id)
    assert win.calls(key, GETPPID) == n * threads  # tolerance 0: in-kernel counting is exact
    per_thread = _thread_calls(win, pid)
    assert len(per_thread) == threads
    # every thread's consecutive pairs, all counted in its process: sum(calls - 1), nothing more or less
    g2 = win.data.ngram2[(win.data.ngram2["tgid"] == pid) & (win.data.ngram2["nc"] == 0)]
    assert int(g2["n"].sum()) == sum(per_thread.values()) - threads
    same = g2[(g2["a"] == GETPPID) & (g2["b"] == GETPPID)]
    assert n * threads - threads <= int(same["n"].sum()) < n * threads
    # getppid is cheap: the no-cheap pairs and triples never contain it
    nc = win.data.ngram2[win.data.ngram2["nc"] == 1]
    assert not np.any((nc["a"] == GETPPID) | (nc["b"] == GETPPID))
    g3 = win.data.ngram3
    assert GETPPID not in {*g3["a"].tolist(), *g3["b"].tolist(), *g3["c"].tolist()}
    assert win.events >= n * threads
    assert not any(win.lost.values())


def test_processes_outside_the_pods_are_not_counted(source: EbpfSource) -> None:
    prog = build("getppid_loop")
    with LocalPod("ebpf", "inside") as pod:
        key = _watch(source, pod)
        source.read_window()
        outside = subprocess.Popen([str(prog), "30000", "2"])
        sp = pod.spawn([str(prog), "5000", "1"])
        assert sp.proc.wait(timeout=60) == 0
        assert outside.wait(timeout=60) == 0
        win = source.read_window()
    assert outside.pid not in set(win.data.counts["tgid"].tolist())
    assert win.calls(key, GETPPID) == 5000
    assert int(win.data.counts["n"][win.data.counts["nr"] == GETPPID].sum()) == 5000
    assert {uid for uid, _ in win.streams.values()} == {pod.uid}


def test_windows_reset_and_samples_are_bounded(source: EbpfSource) -> None:
    with LocalPod("ebpf", "reset") as pod:
        _pid, win = _run_in_pod(source, pod, [str(build("getppid_loop")), "10000", "2"])
        key = (pod.uid, pod.container_id)
        after = source.read_window()
    assert win.calls(key, GETPPID) == 20_000
    assert after.calls(key) == 0
    assert len(after.data.ngram2) == 0
    s = win.data.samples
    assert 0 < len(s) <= 64 + (os.cpu_count() or 1)  # budget per cgroup and window (+ racing CPUs)
    assert set(s["cgid"].tolist()) <= set(win.streams)
    assert np.all(np.diff(s["ts_ns"].astype(np.int64)) >= 0)
    assert win.start_ns - 10**9 <= int(s["ts_ns"][0]) <= win.end_ns  # wall-clock, inside the window


def test_hostile_syscall_numbers_are_counted_as_other(source: EbpfSource) -> None:
    code = (
        "import ctypes; l = ctypes.CDLL(None)\nfor _ in range(100): l.syscall(5000)\nfor _ in range(50): l.syscall(-1)"
    )
    with LocalPod("ebpf", "hostile") as pod:
        _, win = _run_in_pod(source, pod, [sys.executable, "-c", code])
        key = (pod.uid, pod.container_id)
    assert win.calls(key, NR_OTHER) == 150


def test_full_maps_are_counted_as_loss_never_hidden() -> None:
    src = EbpfSource(CGROUP_ROOT, sample_budget=4, map_entries=16)  # far too small on purpose
    src.start()
    try:
        with LocalPod("ebpf", "full") as pod:
            _, win = _run_in_pod(src, pod, [str(build("getppid_loop")), "2000", "8"])
    finally:
        src.stop()
    lost = win.lost
    assert lost["counts_map_full"] > 0
    assert lost["ngram2_map_full"] > 0
    # every event of the window is either in a count or in the loss counter
    assert int(win.data.counts["n"].sum()) + lost["counts_map_full"] == win.events
    assert len(win.data.counts) <= 16
    # ... and charged to the pod's own cgroups (every refused record: counts, pairs, triples, samples)
    assert sum(win.lost_by_cgroup.values()) == sum(lost.values())
    assert set(win.lost_by_cgroup) <= set(win.streams)


def test_cgroup_filter_follows_the_scan(source: EbpfSource) -> None:
    with LocalPod("ebpf", "leaves") as pod:
        key = _watch(source, pod)
        assert source.program.cgroups() == set(source.streams)
        assert key in source.streams.values()
        before = set(source.streams)
    source.set_streams({k: d for k, d in scan_pods(CGROUP_ROOT).dirs.items() if k[0] == pod.uid})
    assert source.streams == {}  # the pod is gone: its ids left the kernel's filter
    assert source.program.cgroups() == set()
    assert before


def test_ngrams_never_cross_a_window(source: EbpfSource) -> None:
    """Windows closed while one thread runs: each window's pairs are its calls minus one (the context resets)."""
    with LocalPod("ebpf", "borders") as pod:
        key = _watch(source, pod)
        source.read_window()
        sp = pod.spawn([str(build("getppid_loop")), "1500000", "1"])
        windows = []
        while sp.proc.poll() is None:
            time.sleep(0.05)
            windows.append(source.read_window())
        assert sp.proc.wait(timeout=60) == 0
        windows.append(source.read_window())
    busy = [w for w in windows if w.calls(key) > 0]
    assert len(busy) >= 3  # the run spanned several windows
    for w in busy:
        pairs = w.data.ngram2[(w.data.ngram2["tgid"] == sp.pid) & (w.data.ngram2["nc"] == 0)]
        assert int(pairs["n"].sum()) == w.calls(key) - 1
    assert sum(w.calls(key, GETPPID) for w in windows) == 1_500_000
