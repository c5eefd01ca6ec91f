"""Real kernel capture of real programs inside emulated pods, checked against ground truth."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.compute as pc
import pytest
from minerlens_collector.tools.capture import PodLabel, capture_command, capture_existing
from minerlens_collector.tools.local_pod import LocalPod
from minerlens_core.schemas import FdKind
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
    # the benchmark's replies go out on long-lived TCP connections: every one is tagged so (a reply on a
    # redis-cli connection closed within the same poll may be UNKNOWN, never another kind)
    t = read_trace(tmp_path / "redis.parquet").table
    inet = _count(t, syscall="write", fd_kind=int(FdKind.SOCKET_INET))
    assert 2 * requests <= inet <= writes
    assert _count(t, syscall="write", fd_kind=int(FdKind.FILE)) == 0  # no persistence configured


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


@pytest.fixture
def sink() -> Iterator[int]:
    """A loopback TCP server that reads and discards whatever its clients send; yields its port."""
    srv = socket.create_server(("127.0.0.1", 0))
    conns: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            conns.append(c)
            threading.Thread(target=lambda c=c: all(iter(lambda: c.recv(1 << 16), b"")), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield int(srv.getsockname()[1])
    finally:
        srv.close()
        for c in conns:
            c.close()


def _writes(tmp_path: Path, port: int, pause_ms: int, n: int, m: int, k: int, m2: int) -> tuple[list[int], list[int]]:
    """Capture fd_writer; (fd_kind of each of its writes in order, the kind each one went to)."""
    prog = build("fd_writer")
    out = tmp_path / "w.parquet"
    args = [str(prog), str(port), str(tmp_path / "data"), str(n), str(m), str(k), str(m2), str(pause_ms)]
    result = capture_command(args, PodLabel("lab", "writer"), seconds=30, out=out, source_kind="tracefs")
    assert result.exit_code == 0
    assert result.lost_events == 0
    t = read_trace(out).table
    w = t.filter(pc.and_(pc.equal(t.column("syscall"), "write"), pc.equal(t.column("comm"), prog.name[:15])))
    expect = []
    for i in range(max(n, m, k)):
        expect += [int(FdKind.FILE)] * (i < n) + [int(FdKind.SOCKET_INET)] * (i < m)
        expect += [int(FdKind.SOCKET_OTHER)] * (i < k)
    expect += [int(FdKind.SOCKET_INET)] * m2
    return w.column("fd_kind").to_pylist(), expect


def test_writes_are_tagged_with_the_kind_of_their_fd(tmp_path: Path, sink: int) -> None:
    """N writes to a file, M to a TCP socket, K to a unix socket, then M2 to a TCP socket that reuses the
    file's fd number: every write carries the kind of what it wrote to."""
    tags, expect = _writes(tmp_path, sink, 300, n=300, m=200, k=100, m2=50)
    assert tags == expect
    assert tags.count(FdKind.FILE) == 300
    assert tags.count(FdKind.SOCKET_INET) == 250


def test_a_tag_is_unknown_rather_than_wrong_when_the_fd_was_reused_first(tmp_path: Path, sink: int) -> None:
    """Without the pause, the file is closed and its number reused before the collector reads the events:
    what the earlier writes went to cannot be known any more. They are UNKNOWN, never mislabelled."""
    tags, expect = _writes(tmp_path, sink, 0, n=300, m=200, k=100, m2=50)
    assert len(tags) == len(expect)
    assert all(t in (e, 0) for t, e in zip(tags, expect, strict=True))
    assert tags[-50:] == [int(FdKind.SOCKET_INET)] * 50  # after the reuse: resolved afresh


def test_capture_records_resource_samples_into_the_trace(tmp_path: Path) -> None:
    prog = build("spin_threads")
    out = tmp_path / "spin.parquet"
    t0 = time.time_ns()
    result = capture_command(
        [str(prog), "2", "3.5"], PodLabel("lab", "spin"), seconds=10, out=out, source_kind="tracefs"
    )
    assert result.exit_code == 0
    trace = read_trace(out)
    samples = trace.resources
    assert result.resource_samples == len(samples) >= 4  # one at start, every wall-clock second, one at the end
    ts = [s.sample.ts_ns for s in samples]
    assert ts == sorted(ts)
    assert t0 <= ts[0]
    assert {(s.pod_uid, s.container_id) for s in samples} == {
        (trace.meta.extra["pod_uid"], trace.meta.extra["container_id"])
    }
    seen = [p for s in samples for p in s.sample.processes if p.comm.startswith("spin_threads")]
    assert seen
    assert max(p.threads for p in seen) == 3
    assert max(p.running for p in seen) == 2
    assert all(p.exe == str(prog) for p in seen)
    # the pod burnt CPU between the first and the last sample, as its cgroup counted it
    first, last = samples[0].sample, samples[-1].sample
    assert first.cpu_ns is not None
    assert last.cpu_ns is not None
    assert last.cpu_ns - first.cpu_ns > 0.3e9
    kinds = trace.table.column("fd_kind")
    assert kinds.null_count == 0  # tracefs decodes args[0]: every row is tagged (0: not an fd call)


def test_a_pod_calling_nonexistent_syscalls_is_captured_and_batched(tmp_path: Path) -> None:
    """The kernel records ``syscall(-1)`` as id -1: the capture keeps it, the collector's batch sends it
    as the unknown number (a pod must not be able to make the collector's messages invalid)."""
    from minerlens_collector.agent.attribution import TaskResolver
    from minerlens_collector.agent.batcher import Batcher
    from minerlens_collector.cgroups import PodCgroup
    from minerlens_collector.events import RawEvents
    from minerlens_core.syscalls import host_arch

    code = "import ctypes; libc = ctypes.CDLL(None); libc.syscall(-1); libc.syscall(-5); libc.syscall(100000)"
    out = tmp_path / "neg.parquet"
    capture_command([sys.executable, "-c", code], PodLabel("lab", "neg"), seconds=10, out=out, source_kind="tracefs")
    t = read_trace(out).table
    odd = sorted({int(x) for x in t.column("nr").to_pylist() if x is not None and (x < 0 or x > 4096)})
    assert odd == [-5, -1, 100000]
    ev = RawEvents(
        t.column("ts_ns").to_numpy(),
        t.column("tid").to_numpy().astype("int32"),
        t.column("nr").to_numpy().astype("int64"),
    )
    resolver = TaskResolver()
    b = Batcher(resolver=resolver, node="n", cluster="c", arch=host_arch(), include_node=True)
    for tid in set(ev.tid.tolist()):  # the program is gone: attribute its threads as the cgroup scan would
        resolver.hints[int(tid)] = PodCgroup(t.column("pod_uid")[0].as_py(), "burstable")
    b.add(ev)
    nrs = [n for batch in b.flush(force=True) for n in batch.nr]
    assert len(nrs) == t.num_rows
    assert nrs.count(1 << 20) == 2
    assert 100000 in nrs
