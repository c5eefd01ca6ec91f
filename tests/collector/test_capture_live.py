"""Real kernel capture of real programs inside emulated pods, checked against ground truth."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest
from minerlens_collector.capture import PodLabel, capture_command, capture_existing
from minerlens_collector.local_pod import LocalPod
from minerlens_core.traces import read_trace

from tests.kernel import require_tracefs
from tests.programs import build

pytestmark = pytest.mark.kernel


@pytest.fixture(autouse=True)
def _tracefs() -> None:
    require_tracefs()


def _count(table, **eq: object) -> int:  # type: ignore[no-untyped-def]
    mask = None
    for col, val in eq.items():
        m = pc.equal(table.column(col), val)
        mask = m if mask is None else pc.and_(mask, m)
    return int(pc.sum(mask.cast("int64")).as_py() or 0)


@pytest.mark.parametrize("driver", ["cgroupfs", "systemd"])
def test_getppid_program_is_captured_exactly_with_pod_identity(tmp_path: Path, driver: str) -> None:
    prog = build("getppid_loop")
    n, threads = 100_000, 2
    t0 = time.time_ns()
    result = capture_command(
        [str(prog), str(n), str(threads)],
        PodLabel("lab", "ppid", label="benign", workload="getppid"),
        seconds=60,
        out=tmp_path / "t.parquet",
        source_kind="tracefs",
        driver=driver,  # type: ignore[arg-type]
    )
    t1 = time.time_ns()
    assert result.exit_code == 0
    assert result.lost_events == 0
    trace = read_trace(tmp_path / "t.parquet")
    t = trace.table
    assert _count(t, syscall="getppid") == n * threads
    getppid = t.filter(pc.equal(t.column("syscall"), "getppid"))
    per_tid = getppid.group_by("tid").aggregate([("nr", "count")]).to_pylist()
    assert sorted(r["nr_count"] for r in per_tid) == [n] * threads
    assert len(set(getppid.column("pid").to_pylist())) == 1  # both threads belong to one process
    uid = trace.meta.extra["pod_uid"]
    assert re.fullmatch(r"[0-9a-f-]{36}", uid)
    assert set(t.column("pod_uid").to_pylist()) == {uid}
    assert set(t.column("container_id").to_pylist()) == {trace.meta.extra["container_id"]}
    assert set(t.column("namespace").to_pylist()) == {"lab"}
    assert prog.name[:15] in set(getppid.column("comm").to_pylist())
    ts = t.column("ts_ns").to_numpy()
    assert (ts >= t0 - 1_000_000_000).all()
    assert (ts <= t1 + 1_000_000_000).all()
    assert trace.meta.label == "benign"
    assert trace.meta.seconds is not None


def test_only_the_pod_is_captured(tmp_path: Path) -> None:
    """A busy process outside the pod leaves no trace in the pod's capture."""
    prog = build("getppid_loop")
    outsider = subprocess.Popen([str(prog), "2000000"])
    try:
        result = capture_command(
            [str(prog), "5000"], PodLabel("lab", "small"), seconds=30, out=tmp_path / "t.parquet", source_kind="tracefs"
        )
    finally:
        outsider.kill()
        outsider.wait()
    t = read_trace(tmp_path / "t.parquet").table
    assert outsider.pid not in set(t.column("pid").to_pylist())
    assert _count(t, syscall="getppid") == 5000
    assert result.lost_events == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args], check=True, capture_output=True, text=True, timeout=10
    ).stdout


@pytest.mark.slow
def test_redis_under_load_matches_its_own_counters(tmp_path: Path) -> None:
    """redis-server in a pod, driven by redis-benchmark from outside: one read and one write per request."""
    if shutil.which("redis-server") is None or shutil.which("redis-benchmark") is None:
        pytest.skip("redis-server / redis-benchmark not installed (scripts/install-system-deps.sh)")
    port = _free_port()
    stats: dict[str, int] = {}
    requests = 20_000

    def drive(_: LocalPod) -> None:
        def run() -> None:
            for _ in range(100):
                try:
                    _redis_cli(port, "ping")
                    break
                except subprocess.CalledProcessError:
                    time.sleep(0.05)
            base = _redis_cli(port, "info", "stats")
            subprocess.run(
                ["redis-benchmark", "-p", str(port), "-n", str(requests), "-c", "1", "-P", "1", "-t", "set,get", "-q"],
                check=True,
                capture_output=True,
                timeout=60,
            )
            after = _redis_cli(port, "info", "stats")

            def total(text: str) -> int:
                return int(re.search(r"total_commands_processed:(\d+)", text).group(1))  # type: ignore[union-attr]

            stats["commands"] = total(after) - total(base) - 1  # the 'info' call itself
            _redis_cli(port, "shutdown", "nosave")

        threading.Thread(target=run, daemon=True).start()

    result = capture_command(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        PodLabel("cache", "redis-0", label="benign", workload="redis"),
        seconds=90,
        out=tmp_path / "redis.parquet",
        source_kind="tracefs",
        on_start=drive,
    )
    assert result.lost_events == 0
    commands = stats["commands"]
    assert commands >= 2 * requests
    writes = result.per_syscall.get("write", 0)
    reads = result.per_syscall.get("read", 0)
    # Every request with -P 1 is one read() of the request and one write() of the reply.
    assert commands <= writes <= commands * 1.02 + 50
    assert commands <= reads <= commands * 1.05 + 200
    assert result.per_syscall.get("epoll_wait", 0) > 0


def test_attach_to_running_process_by_pid(tmp_path: Path) -> None:
    prog = build("getppid_loop")
    proc = subprocess.Popen(["sh", "-c", f"sleep 0.5; exec {prog} 20000"])
    try:
        result = capture_existing(
            PodLabel("lab", "attached"), seconds=20, out=tmp_path / "a.parquet", pid=proc.pid, source_kind="tracefs"
        )
    finally:
        proc.wait(timeout=30)
    assert result.per_syscall.get("getppid") == 20000
    assert result.lost_events == 0


def test_cgroups_are_removed_even_when_the_program_fails(tmp_path: Path) -> None:
    before = {p for p in Path("/sys/fs/cgroup").rglob("pod*") if p.is_dir()}
    result = capture_command(
        ["/bin/false"], PodLabel("lab", "fails"), seconds=5, out=tmp_path / "f.parquet", source_kind="tracefs"
    )
    assert result.exit_code == 1
    after = {p for p in Path("/sys/fs/cgroup").rglob("pod*") if p.is_dir()}
    assert after == before
