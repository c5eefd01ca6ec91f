"""A catalog workload run as a live pod (what the demo does): a real kubelet-named cgroup while it runs,
driven from outside, nothing left behind."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from minerlens_collector.cgroups import parse_cgroup_path
from minerlens_collector.tools.local_pod import LocalPod
from minerlens_lab.benign.web import PythonHttpServer
from minerlens_lab.live import run_live_pod

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="emulated pods need root (cgroups)")


def test_live_pod_runs_in_a_kubelet_cgroup_and_cleans_up(tmp_path: Path) -> None:
    seen: dict[str, object] = {}

    def on_start(pod: LocalPod) -> None:
        seen["cgroup"] = pod.cgroup_path
        seen["pids"] = pod.pids()
        seen["proc_cgroup"] = Path(f"/proc/{pod.pids()[0]}/cgroup").read_text() if pod.pids() else ""

    result = run_live_pod(
        PythonHttpServer(), "shop", "web-0", seconds=4.0, cache_dir=tmp_path / "cache", threads=1, on_start=on_start
    )
    assert seen["pids"], "the workload's processes ran inside the pod"
    ident = parse_cgroup_path(str(seen["cgroup"]))
    assert ident is not None
    assert ident.pod_uid == result.uid
    assert result.uid in str(seen["proc_cgroup"]).replace("_", "-")
    assert 3.5 <= result.seconds < 10
    assert int(result.facts.get("client_requests", 0)) > 0, result.facts  # the load generator really ran
    assert not any(result.uid in p.read_text() for p in Path("/proc").glob("[0-9]*/cgroup") if p.exists()), (
        "no process is left in the pod"
    )


def test_live_pod_stops_early_when_asked(tmp_path: Path) -> None:
    stop = threading.Event()
    timer = threading.Timer(1.0, stop.set)
    timer.start()
    result = run_live_pod(PythonHttpServer(), "shop", "web-1", seconds=30.0, cache_dir=tmp_path, threads=1, stop=stop)
    timer.cancel()
    assert result.seconds < 10
