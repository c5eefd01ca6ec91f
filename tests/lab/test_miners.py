"""The lab's miners, run for real in emulated pods against the loopback stratum pool.

They really mine (the pool recomputes every share with an independent implementation), obey the pod's
CPU quota, and their noise thread makes the configured share of the pod's syscalls.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
from minerlens_collector.capture import PodLabel, capture_command
from minerlens_collector.local_pod import LocalPod
from minerlens_core.traces import read_trace
from minerlens_lab.miners import MinerWorkload, miner_workloads
from minerlens_lab.miners.build import build_miner, randomx_available
from minerlens_lab.miners.pow import ALGORITHMS, sha256d
from minerlens_lab.miners.workload import parse_miner_log
from minerlens_lab.pool import PoolThread, query_stats
from minerlens_lab.workload import RunContext

from tests.kernel import require_tracefs

FAMILIES = ("miner-randomx", "miner-scrypt", "miner-sha256d", "miner-cryptonight")
NOISE_SYSCALLS = {"getpid", "nanosleep", "clock_gettime", "read"}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lab-cache")


@pytest.fixture(scope="module")
def pool(cache_dir: Path) -> Iterator[PoolThread]:
    with PoolThread(cache_dir, warm_up=("rx/0", "cn-like") if randomx_available() else ("cn-like",)) as p:
        yield p


@pytest.fixture
def root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create pod cgroups")


def _workload(name: str) -> MinerWorkload:
    found = {w.name: w for w in miner_workloads()}[name]
    assert isinstance(found, MinerWorkload)
    return found


def _ctx(tmp_path: Path, cache_dir: Path, pool: PoolThread, seconds: float) -> RunContext:
    workdir = tmp_path / "run"
    workdir.mkdir()
    return RunContext(workdir=workdir, cache_dir=cache_dir, seconds=seconds, pool=pool.address, threads=2)


def _run_in_pod(w: MinerWorkload, ctx: RunContext, *, warmup_s: float = 0.0) -> dict[str, Any]:
    """A minimal lab runner: prepare, run ``command`` in a pod (and ``drive`` outside) for ``ctx.seconds``, check.
    Returns the pod's CPU use (cores) measured after ``warmup_s``."""
    w.prepare(ctx)
    stop = threading.Event()
    with LocalPod("lab-test", w.name, cpu_limit=w.cpu_limit) as pod:
        pod.spawn(w.command(ctx))
        driver = threading.Thread(target=w.drive, args=(ctx, stop), daemon=True)
        driver.start()
        t0 = time.monotonic()
        time.sleep(warmup_s)
        cpu0, t1 = pod.cpu_usage_ns(), time.monotonic()
        time.sleep(max(0.0, ctx.seconds - (t1 - t0)))
        cpu1, t2 = pod.cpu_usage_ns(), time.monotonic()
        processes = {
            Path(f"/proc/{pid}/comm").read_text().strip() for pid in pod.pids() if Path(f"/proc/{pid}").exists()
        }
        stop.set()
        driver.join(timeout=10)
    time.sleep(0.3)  # the last submit's answer
    w.check(ctx)
    cores = None if cpu0 is None or cpu1 is None else (cpu1 - cpu0) / 1e9 / (t2 - t1)
    return {"cores": cores, "comms": processes}


# ---- the catalog -------------------------------------------------------------------------------------


def test_catalog_covers_families_and_variants() -> None:
    ws = [w for w in miner_workloads() if isinstance(w, MinerWorkload)]
    names = [w.name for w in ws]
    assert len(ws) >= 8
    assert len(set(names)) == len(names)
    assert {w.family for w in ws} == set(FAMILIES)
    assert {w.label for w in ws} == {"miner"}
    assert {w.cpu_limit for w in ws} >= {0.125, 0.25, 0.5}
    assert {w.config.noise for w in ws} >= {0.5, 0.7, 0.9}
    assert {w.config.yield_mode for w in ws} == {"none", "sched", "sleep"}
    for family in FAMILIES:
        assert f"{family}-1t" in names
        assert f"{family}-2t" in names
        assert f"{family}-renamed" in names
    assert any(w.config.hidden_web for w in ws)
    for example in (
        "miner-randomx-2t",
        "miner-sha256d-throttle-25",
        "miner-cryptonight-renamed",
        "miner-sha256d-noise-90",
    ):
        assert example in names


def test_commands_point_at_the_pool_and_log(tmp_path: Path, cache_dir: Path) -> None:
    ctx = RunContext(workdir=tmp_path, cache_dir=cache_dir, seconds=10, pool=("127.0.0.1", 4444), threads=3)
    w = _workload("miner-sha256d-noise-90")
    w.prepare(ctx)
    argv = w.command(ctx)
    assert argv[argv.index("-o") + 1] == "127.0.0.1:4444"
    assert argv[argv.index("-t") + 1] == "3"
    assert argv[argv.index("--noise") + 1] == "0.9"
    assert argv[argv.index("-u") + 1] == w.login(ctx) == ctx.facts["pool_login"]
    renamed = _workload("miner-cryptonight-renamed")
    renamed.prepare(ctx)
    assert Path(renamed.command(ctx)[0]).name == "kworker-events"


def test_miner_builds_without_warnings(cache_dir: Path) -> None:
    binary = build_miner(cache_dir)  # BuildError on any warning
    out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, check=True).stdout
    assert "--noise" in out


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_bench_mode_hashes(cache_dir: Path, algo: str) -> None:
    if algo == "rx/0" and not randomx_available():
        pytest.skip("librandomx-dev not installed")
    done = subprocess.run(
        [str(build_miner(cache_dir)), "-a", algo, "-t", "1", "--bench", "--time", "1.5", "--print-time", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "summary: hashes" in done.stdout
    assert int(done.stdout.split("summary: hashes ")[1].split()[0]) > 0


# ---- the pool ----------------------------------------------------------------------------------------


class _Client:
    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=10)
        self.buf = b""
        self.next_id = 0

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        self.sock.sendall(json.dumps({"id": self.next_id, "method": method, "params": params}).encode() + b"\n")
        while True:
            msg = self._line()
            if msg.get("id") == self.next_id:
                return msg

    def _line(self) -> dict[str, Any]:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "pool closed the connection"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        out: dict[str, Any] = json.loads(line)
        return out


def test_pool_verifies_shares(cache_dir: Path) -> None:
    """Valid shares are accepted once; wrong hashes, duplicates and unknown jobs are rejected."""
    with PoolThread(cache_dir, warm_up=(), start_diff={"sha256d": 1}) as p:
        c = _Client(p.address)
        login = c.call("login", {"login": "unit", "pass": "x", "agent": "test", "algo": ["sha256d"]})
        assert login["error"] is None
        sid, job = login["result"]["id"], login["result"]["job"]
        assert job["algo"] == "sha256d"
        assert len(bytes.fromhex(job["blob"])) == 80
        blob = bytes.fromhex(job["blob"])
        nonce = bytes(4)
        digest = sha256d(blob[:76] + nonce + blob[80:])
        share = {"id": sid, "job_id": job["job_id"], "nonce": nonce.hex(), "result": digest.hex()}
        assert c.call("submit", share)["result"] == {"status": "OK"}
        assert c.call("submit", share)["error"]["message"] == "Duplicate share"
        bad = {**share, "nonce": "01000000"}
        assert "does not match" in c.call("submit", bad)["error"]["message"]
        assert c.call("submit", {**share, "job_id": "nope"})["error"]["message"] == "Block expired"
        assert c.call("keepalived", {"id": sid})["result"] == {"status": "KEEPALIVED"}
        c.sock.close()
        stats = query_stats(p.address, "unit")
        assert stats["accepted"] == 1
        assert stats["rejected"] == 3
        assert stats["connections"] == 1
        assert stats["keepalives"] == 1
        assert p.stats("unit") == stats
        assert query_stats(p.address, "nobody")["accepted"] == 0


# ---- real mining in pods -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.kernel
@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_really_mines(
    root: None, tmp_path: Path, cache_dir: Path, pool: PoolThread, family: str, record_property: Any
) -> None:
    w = _workload(f"{family}-2t")
    if w.config.algo == "rx/0" and not randomx_available():
        pytest.skip("librandomx-dev not installed")
    ctx = _ctx(tmp_path, cache_dir, pool, seconds=9)
    _run_in_pod(w, ctx)
    stats = pool.stats(w.login(ctx))
    facts = {k: v for k, v in ctx.facts.items() if k not in ("miner_binary", "pool_login")}
    print(f"{w.name}: {stats} {facts}")
    record_property("facts", facts)
    assert stats["accepted"] > 0
    assert stats["rejected"] == 0
    assert stats["connections"] == 1
    assert ctx.facts["shares_accepted"] == stats["accepted"]
    assert ctx.facts["hashrate"] > 0
    if w.config.algo in ("rx/0", "cn-like"):  # huge pages are recorded, whatever the machine offers
        assert set(ctx.facts["huge_pages"].values()) <= {"hugetlb", "thp", "none"}


@pytest.mark.slow
@pytest.mark.kernel
def test_cpu_limit_throttles_the_miner(root: None, tmp_path: Path, cache_dir: Path, pool: PoolThread) -> None:
    w = _workload("miner-sha256d-throttle-25")
    assert w.cpu_limit == 0.25
    ctx = _ctx(tmp_path, cache_dir, pool, seconds=8)
    measured = _run_in_pod(w, ctx, warmup_s=1.0)
    print(f"{w.name}: {measured['cores']:.3f} cores, {ctx.facts}")
    assert measured["cores"] == pytest.approx(0.25, rel=0.2)
    assert ctx.facts["shares_accepted"] > 0


@pytest.mark.slow
@pytest.mark.kernel
def test_miner_hidden_in_a_web_pod(root: None, tmp_path: Path, cache_dir: Path, pool: PoolThread) -> None:
    w = _workload("miner-sha256d-hidden-web")
    ctx = _ctx(tmp_path, cache_dir, pool, seconds=8)
    measured = _run_in_pod(w, ctx)
    assert ctx.facts["shares_accepted"] > 0
    assert ctx.facts["http_requests"] > 50
    assert ctx.facts["http_errors"] == 0
    assert "python3" in measured["comms"]  # the web server and the miner, side by side
    assert any(c.startswith("minerlens-mine") for c in measured["comms"])


@pytest.mark.slow
@pytest.mark.kernel
def test_noise_thread_makes_its_share_of_the_pods_syscalls(tmp_path: Path, cache_dir: Path, pool: PoolThread) -> None:
    require_tracefs()
    w = _workload("miner-cryptonight-noise-70")
    ctx = _ctx(tmp_path, cache_dir, pool, seconds=9)
    w.prepare(ctx)
    result = capture_command(
        w.command(ctx),
        PodLabel("lab-test", w.name, label="miner", workload=w.name, family=w.family, variant=w.variant),
        seconds=ctx.seconds,
        out=tmp_path / "noise.parquet",
        source_kind="tracefs",
        cpu_limit=w.cpu_limit,
    )
    assert result.lost_events == 0
    t = read_trace(tmp_path / "noise.parquet").table
    total = t.num_rows
    noise_tids = set(t.filter(pc.equal(t.column("syscall"), "getpid")).column("tid").to_pylist())
    assert len(noise_tids) == 1  # one noise thread, and nobody else calls getpid
    calls = [
        name
        for tid, name in zip(t.column("tid").to_pylist(), t.column("syscall").to_pylist(), strict=True)
        if tid in noise_tids
    ]
    share = len(calls) / total
    kinds = set(calls)
    print(f"{w.name}: {len(calls)}/{total} syscalls from the noise thread = {share:.3f}; kinds {kinds}")
    assert share == pytest.approx(0.70, abs=0.07)
    assert kinds - {"set_robust_list", "rseq", "rt_sigprocmask", "openat", "madvise", "exit"} <= NOISE_SYSCALLS
    time.sleep(0.3)
    w.check(ctx)
    assert ctx.facts["shares_accepted"] > 0
    assert parse_miner_log(w.log_path(ctx))["hashrate"] > 0
