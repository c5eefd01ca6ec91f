"""The lab's C miners, run for real: the catalog, the two real-miner structures (XMRig, cpuminer) as strace
sees them, stratum traffic a small share of the syscalls under the realistic pool, mining in pods (the
pool recomputes every share), CPU quota, the hidden web pod, and the noise thread's share."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
from minerlens_collector.tools.capture import PodLabel, capture_command
from minerlens_collector.tools.local_pod import LocalPod
from minerlens_core.traces import read_trace
from minerlens_lab.miners import MinerWorkload, c_miner_workloads, miner_workloads
from minerlens_lab.miners.build import build_miner, randomx_available
from minerlens_lab.miners.logparse import parse_miner_log
from minerlens_lab.miners.pow import ALGORITHMS
from minerlens_lab.miners.stratum_share import stratum_share
from minerlens_lab.pool import REALISTIC, PoolThread
from minerlens_lab.workload import RunContext
from minerlens_lab.xmrig import XmrigWorkload

from tests.kernel import require_tracefs

FAMILIES = ("miner-randomx", "miner-scrypt", "miner-sha256d", "miner-cryptonight")
NOISE_SYSCALLS = {"getpid", "nanosleep", "clock_gettime", "read"}
TEST_INTERVAL_S = 2.0


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lab-cache")


@pytest.fixture(scope="module")
def pool(cache_dir: Path) -> Iterator[PoolThread]:
    """A pool that wants a share every 2 s, so that a few seconds of mining prove something."""
    warm = ("rx/0", "cn-like") if randomx_available() else ("cn-like",)
    with PoolThread(cache_dir, warm_up=warm, config=REALISTIC.with_share_interval(TEST_INTERVAL_S)) as p:
        yield p


@pytest.fixture
def root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create pod cgroups")


def _workload(name: str) -> MinerWorkload:
    found = {w.name: w for w in c_miner_workloads()}[name]
    assert isinstance(found, MinerWorkload)
    found.share_interval_s = TEST_INTERVAL_S / 4  # start easy: a loaded 2-core machine hashes slowly
    return found


def _ctx(tmp_path: Path, cache_dir: Path, pool: PoolThread, seconds: float, repeat: int = 1) -> RunContext:
    workdir = tmp_path / "run"
    workdir.mkdir()
    return RunContext(
        workdir=workdir, cache_dir=cache_dir, seconds=seconds, pool=pool.address, threads=2, repeat=repeat
    )


def _run_in_pod(w: MinerWorkload, ctx: RunContext, *, warmup_s: float = 0.0) -> dict[str, Any]:
    """A minimal lab runner: prepare, run ``command`` in a pod (and ``drive`` outside) for ``ctx.seconds``, check.
    Returns the pod's CPU use (cores) measured after ``warmup_s``."""
    w.prepare(ctx)
    stop = threading.Event()
    try:
        with LocalPod("lab-test", w.name, cpu_limit=w.cpu_limit) as pod:
            pod.spawn(w.command(ctx))
            driver = threading.Thread(target=w.drive, args=(ctx, stop), daemon=True)
            driver.start()
            t0 = time.monotonic()
            time.sleep(warmup_s)
            cpu0, t1 = pod.cpu_usage_ns(), time.monotonic()
            time.sleep(max(0.0, ctx.seconds - (t1 - t0)))
            cpu1, t2 = pod.cpu_usage_ns(), time.monotonic()
            comms = {
                Path(f"/proc/{pid}/comm").read_text().strip() for pid in pod.pids() if Path(f"/proc/{pid}").exists()
            }
            stop.set()
            driver.join(timeout=10)
        time.sleep(0.3)  # the last submit's answer
        w.check(ctx)
    finally:
        w.cleanup(ctx)
    cores = None if cpu0 is None or cpu1 is None else (cpu1 - cpu0) / 1e9 / (t2 - t1)
    return {"cores": cores, "comms": comms}


# ---- the catalog -------------------------------------------------------------------------------------


def test_c_miner_catalog() -> None:
    ws = [w for w in c_miner_workloads() if isinstance(w, MinerWorkload)]
    names = [w.name for w in ws]
    assert 10 <= len(ws) <= 14
    assert len(set(names)) == len(names)
    assert {w.family for w in ws} == set(FAMILIES)
    assert {w.label for w in ws} == {"miner"}
    assert {w.implementation for w in ws} == {"minerlens-c"}
    assert all(w.repeats == 2 and (w.seconds or 0) >= 60 for w in ws)
    assert {w.config.yield_mode for w in ws} >= {None, "none", "sleep"}  # None: the profile's default (yield)
    assert any(w.cpu_limit for w in ws)
    assert any(w.config.noise for w in ws)
    assert any(w.config.hidden_web for w in ws)
    assert any(w.config.disguise for w in ws)
    assert [w.name for w in ws if w.config.pool_profile == "chatty"] == ["miner-randomx-chatty-pool"]
    assert "miner-randomx-2t" in names  # the demo's miner


def test_xmrig_catalog() -> None:
    ws = [w for w in miner_workloads() if isinstance(w, XmrigWorkload)]
    variants = {w.variant for w in ws}
    assert variants >= {"1t", "2t", "no-yield", "throttle-12", "throttle-25", "throttle-50", "light", "renamed"}
    assert variants >= {"hidden-web", "noise-90"}
    assert {w.family for w in ws} == {"miner-xmrig"}
    assert {w.implementation for w in ws} == {"xmrig-6.16.0"}
    assert all(w.repeats == 3 and (w.seconds or 0) >= 60 for w in ws)
    assert {w.cpu_limit for w in ws} >= {0.125, 0.25, 0.5}
    by = {w.variant: w for w in ws}
    assert by["no-yield"].config.cpu_yield is False
    assert by["2t"].config.cpu_yield is True
    assert by["renamed"].comm() == "php-fpm"
    assert by["noise-90"].config.noise == 0.9


def test_commands_point_at_the_pool_and_log(tmp_path: Path, cache_dir: Path) -> None:
    ctx = RunContext(workdir=tmp_path, cache_dir=cache_dir, seconds=10, pool=("127.0.0.1", 4444), threads=3, repeat=2)
    w = _workload("miner-sha256d-noise-90")
    w.prepare(ctx)
    argv = w.command(ctx)
    assert argv[argv.index("-o") + 1] == "127.0.0.1:4444"
    assert argv[argv.index("-t") + 1] == "1"  # threads (2, 1): the second run uses 1
    assert argv[argv.index("--noise") + 1] == "0.9"
    assert argv[argv.index("-u") + 1] == w.login(ctx) == ctx.facts["pool_login"]
    assert argv[argv.index("-p") + 1] == f"x;start={w.start_difficulty(ctx)}"
    assert ctx.facts["miner_comms"] == [Path(argv[0]).name[:15]]
    renamed = _workload("miner-cryptonight-renamed")
    renamed.prepare(ctx)
    assert Path(renamed.command(ctx)[0]).name == "kworker-events"
    assert ctx.facts["miner_comms"] == ["kworker-events"]
    no_yield = _workload("miner-randomx-no-yield").command(ctx)
    assert no_yield[no_yield.index("--yield") + 1] == "none"


def test_miner_builds_without_warnings(cache_dir: Path) -> None:
    binary = build_miner(cache_dir)  # BuildError on any warning
    out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, check=True).stdout
    assert "--noise" in out
    assert "--profile" in out


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_bench_mode_hashes(cache_dir: Path, algo: str) -> None:
    if algo == "rx/0" and not randomx_available():
        pytest.skip("librandomx-dev not installed")
    seconds = "8" if algo == "rx/0" else "1.5"  # RandomX builds its cache first: seconds on a loaded 2-core machine
    done = subprocess.run(
        [str(build_miner(cache_dir)), "-a", algo, "-t", "1", "--bench", "--time", seconds, "--print-time", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "summary: hashes" in done.stdout
    assert int(done.stdout.split("summary: hashes ")[1].split()[0]) > 0


# ---- the structure of each profile, as strace sees it -------------------------------------------------


def _strace_miner(
    tmp_path: Path, cache_dir: Path, address: tuple[str, int], algo: str, seconds: float, *extra: str
) -> tuple[Path, Path]:
    log, trace = tmp_path / "miner.log", tmp_path / "miner.strace"
    argv = [str(build_miner(cache_dir)), "-a", algo, "-o", f"{address[0]}:{address[1]}", "-u", f"st-{tmp_path.name}"]
    argv += ["--log-file", str(log), "--time", str(seconds), *extra]
    subprocess.run(["strace", "-f", "-yy", "-qq", "-o", str(trace), "--", *argv], check=True, timeout=seconds + 60)
    return log, trace


def test_xmrig_profile_is_an_event_loop_with_a_log_thread(tmp_path: Path, cache_dir: Path, pool: PoolThread) -> None:
    """XMRig's structure: epoll_wait with 500 ms / 1 s timers on the main thread, socket read()/write()
    (no send/recv, no poll), log lines written with pwrite64 by another thread, eventfd wake-ups."""
    log, trace = _strace_miner(tmp_path, cache_dir, pool.address, "cn-like", 8, "-t", "1", "-p", "x;start=20")
    got = stratum_share(trace)
    print(got.by_syscall.most_common(12), got.stratum_by_syscall)
    assert got.by_syscall["epoll_wait"] >= 8 * 2  # at least the 500 ms tick
    assert got.by_syscall["pwrite64"] >= 3
    assert got.by_syscall["sched_yield"] > 0  # XMRig's default: yield after every hash
    assert got.stratum_by_syscall["write"] >= 1
    assert got.stratum_by_syscall["read"] >= 1
    assert got.by_syscall["poll"] == got.by_syscall["recvfrom"] == got.by_syscall["sendto"] == 0
    assert "new job from" in log.read_text()
    assert "profile xmrig" in log.read_text()


def test_cpuminer_profile_polls_and_logs_per_scan(tmp_path: Path, cache_dir: Path, pool: PoolThread) -> None:
    """cpuminer's structure: a stratum thread in poll()/recvfrom(), shares sent with sendto() by another
    thread, no yield, no event loop, one log line per scan."""
    log, trace = _strace_miner(tmp_path, cache_dir, pool.address, "sha256d", 8, "-t", "2", "-p", "x;start=200000")
    got = stratum_share(trace)
    print(got.by_syscall.most_common(12), got.stratum_by_syscall)
    assert got.stratum_by_syscall["poll"] >= 1
    assert got.stratum_by_syscall["recvfrom"] >= 1
    assert got.stratum_by_syscall["sendto"] >= 2  # the login and at least one share
    assert got.by_syscall["epoll_wait"] == got.by_syscall["sched_yield"] == got.by_syscall["pwrite64"] == 0
    text = log.read_text()
    assert "khash/s" in text
    assert "accepted:" in text
    assert parse_miner_log(log)["hashrate"] > 0


def test_stratum_is_a_small_share_under_the_realistic_pool(tmp_path: Path, cache_dir: Path) -> None:
    """Done-when of the lab's realism: the catalog's no-yield XMRig-like miner (whose hashing threads make no
    syscall: the case where stratum traffic weighs most), exactly as the catalog runs it against the
    realistic pool (one share per 30 s, half the converged difficulty at the start), spends at most
    5 % of its syscalls on stratum traffic over a 60-s capture, start-up included."""
    if not randomx_available():
        pytest.skip("librandomx-dev not installed")
    w = {x.name: x for x in c_miner_workloads()}["miner-randomx-no-yield"]
    assert isinstance(w, MinerWorkload)
    with PoolThread(cache_dir, warm_up=("rx/0",)) as realistic:
        assert realistic.server.config == REALISTIC
        ctx = RunContext(tmp_path, cache_dir, 60.0, pool=realistic.address, threads=2)
        w.prepare(ctx)
        trace = tmp_path / "miner.strace"
        argv = ["strace", "-f", "-yy", "-qq", "-o", str(trace), "--", *w.command(ctx), "--time", "60"]
        subprocess.run(argv, check=True, timeout=150)
        stats = realistic.stats(w.login(ctx))
    got = stratum_share(trace, realistic.address[1])
    print(f"{got.stratum}/{got.total} = {got.share:.3f}", got.stratum_by_syscall, stats["accepted"], stats["jobs"])
    assert stats["accepted"] >= 1
    assert got.total >= 300  # the event loop's timers: the process is not silent
    assert got.share <= 0.05


# ---- real mining in pods -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.kernel
@pytest.mark.parametrize("name", ["miner-randomx-2t", "miner-scrypt-2t", "miner-sha256d-2t", "miner-cryptonight-2t"])
def test_each_family_really_mines(
    root: None, tmp_path: Path, cache_dir: Path, pool: PoolThread, name: str, record_property: Any
) -> None:
    w = _workload(name)
    if w.config.algo == "rx/0" and not randomx_available():
        pytest.skip("librandomx-dev not installed")
    ctx = _ctx(tmp_path, cache_dir, pool, seconds=12)
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
    assert ctx.facts["miner_comms"] == ["minerlens-miner"]
    if w.config.algo in ("rx/0", "cn-like"):  # huge pages are recorded, whatever the machine offers
        assert set(ctx.facts["huge_pages"].values()) <= {"hugetlb", "thp", "none"}


@pytest.mark.slow
@pytest.mark.kernel
def test_cpu_limit_throttles_the_miner(root: None, tmp_path: Path, cache_dir: Path, pool: PoolThread) -> None:
    w = _workload("miner-randomx-throttle-25")
    assert w.cpu_limit == 0.25
    ctx = _ctx(tmp_path, cache_dir, pool, seconds=10)
    measured = _run_in_pod(w, ctx, warmup_s=3.0)
    print(f"{w.name}: {measured['cores']:.3f} cores, {ctx.facts}")
    assert measured["cores"] == pytest.approx(0.25, rel=0.2)


@pytest.mark.slow
@pytest.mark.kernel
def test_miner_hidden_in_a_web_pod(root: None, tmp_path: Path, cache_dir: Path, pool: PoolThread) -> None:
    w = _workload("miner-randomx-hidden-web")
    ctx = _ctx(tmp_path, cache_dir, pool, seconds=12)
    measured = _run_in_pod(w, ctx)
    assert ctx.facts["shares_accepted"] > 0
    assert ctx.facts["http_requests"] > 50
    assert ctx.facts["http_errors"] == 0
    assert "python3" in measured["comms"]  # the web server and the miner, side by side
    assert set(ctx.facts["miner_comms"]) <= measured["comms"]
    assert ctx.facts["web_comms"] == ["python3"]


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


def test_stratum_share_counts_only_the_pool_connection(tmp_path: Path) -> None:
    """strace -f -yy lines of an XMRig-like miner next to a web server: only the pool socket counts."""
    log = tmp_path / "s.log"
    log.write_text(
        "100 socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 7<TCP:[4242]>\n"
        "100 connect(7<TCP:[4242]>, {sa_family=AF_INET, sin_port=htons(3333), "
        'sin_addr=inet_addr("127.0.0.1")}, 16) = 0\n'
        "100 epoll_wait(4<anon_inode:[eventpoll]>,  <unfinished ...>\n"
        '101 write(9<anon_inode:[eventfd]>, "\\1\\0\\0\\0\\0\\0\\0\\0", 8) = 8\n'
        "100 <... epoll_wait resumed>[{events=EPOLLIN, data={u32=7, u64=7}}], 8, 500) = 1\n"
        '100 read(7<TCP:[127.0.0.1:40310->127.0.0.1:3333]>, "{\\"id\\":1}\\n", 65536) = 9\n'
        "100 epoll_wait(4<anon_inode:[eventpoll]>, [], 8, 500) = 0\n"
        '101 pwrite64(5</tmp/miner.log>, "[..] accepted\\n", 14, 100) = 14\n'
        '200 recvfrom(3<TCP:[127.0.0.1:8080->127.0.0.1:51000]>, "GET / HTTP/1.0\\r\\n", 8192, 0, NULL, NULL) = 16\n'
        "200 poll([{fd=3<TCP:[127.0.0.1:8080->127.0.0.1:51000]>, events=POLLIN}], 1, 500) = 1\n"
    )
    got = stratum_share(log, pool_port=3333)
    assert got.total == 9  # the interrupted epoll_wait counts once
    assert dict(got.stratum_by_syscall) == {"socket": 1, "connect": 1, "epoll_wait": 1, "read": 1}
    assert got.share == pytest.approx(4 / 9)
    assert stratum_share(log).stratum == 6  # without the port every TCP connection is "the pool's"
