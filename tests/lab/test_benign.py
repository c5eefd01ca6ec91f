"""The benign catalog: wide enough (families, look-alikes, repeats), every workload really runs as a pod
for a few seconds and proves its work, and each repeat of a workload runs differently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from minerlens_core.datasets.manifest import verify
from minerlens_lab.benign import benign_workloads
from minerlens_lab.catalog import filter_workloads
from minerlens_lab.cli import register
from minerlens_lab.requirements import missing_requirements
from minerlens_lab.runner import LabOptions, default_cache_dir, plan_runs, run_lab
from minerlens_lab.workload import CI_SUBSET, RunContext, Workload
from typer.testing import CliRunner

from tests.kernel import require_tracefs

FAMILIES = {
    "web", "kv-cache", "database", "batch-cpu", "compression", "media", "ml-training", "build", "idle",
    "hashing-jobs", "keepalive-clients", "queue-workers", "yield-heavy-runtimes",
}  # fmt: skip

# the fact that proves each workload did its work (its check() also raises when it did not)
EVIDENCE = {
    "nginx-wrk": "requests_served",
    "python-http-server": "client_requests",
    "redis-benchmark": "commands_processed",
    "redis-benchmark-aof": "commands_processed",
    "memcached-memaslap": "cmd_get",
    "postgres-pgbench": "transactions",
    "postgres-pgbench-select": "transactions",
    "sysbench-cpu": "reports",
    "sysbench-memory": "reports",
    "sysbench-fileio": "reports",
    "stress-ng-cpu-all": "bogo_ops_cpu",
    "stress-ng-crypt-hash": "bogo_ops_hash",
    "stress-ng-matrix": "bogo_ops_matrix",
    "xz-compress": "busy_cores",
    "xz-9e": "partial_bytes_out",
    "gzip-compress": "busy_cores",
    "zstd-compress": "busy_cores",
    "ffmpeg-x264-hls": "frames_encoded",
    "ffmpeg-render-worker": "frames_rendered",
    "numpy-mlp": "busy_cores",
    "torch-mlp": "busy_cores",
    "dist-training-worker": "exchanges",
    "make-luajit": "files_built",
    "gcc-amalg-luajit": "busy_cores",
    "idle-redis": "health_checks_ok",
    "idle-nginx": "health_checks_ok",
    "idle-cron": "heartbeats",
    "jvm-sha256d": "hashes",
    "node-sha256": "hashes",
    "python-hashlib": "hashes",
    "go-sha256": "hashes",
    "openssl-speed-sha256": "operations",
    "openssl-speed-aes": "operations",
    "tcp-keepalive-client": "answers",
    "websocket-client": "answers",
    "http-long-poll-client": "answers",
    "kafka-consumer-idle": "records_consumed",
    "redis-replica": "replica_counter",
    "redis-queue-pbkdf2-worker": "results_verified",
    "redis-queue-lzma-worker": "results_verified",
    "go-queue-worker": "results_verified",
    "jvm-yield-workers": "tasks",
    "go-channel-ring": "hops",
    "busy-poll-udp": "packets_processed",
}
# capture length of the smoke run: enough for the first progress report (every 2 s), answer or job
SMOKE_SECONDS = 4.0
SMOKE_LONGER = {
    "postgres-pgbench": 8.0,
    "postgres-pgbench-select": 8.0,
    "numpy-mlp": 6.0,
    "torch-mlp": 8.0,
    "jvm-sha256d": 5.0,
    "node-sha256": 5.0,
    "python-hashlib": 5.0,
    "go-sha256": 5.0,
    "jvm-yield-workers": 5.0,
    "go-channel-ring": 5.0,
    "busy-poll-udp": 5.0,
    "tcp-keepalive-client": 6.0,
    "websocket-client": 6.0,
    "http-long-poll-client": 6.0,
    "kafka-consumer-idle": 6.0,
    "redis-replica": 10.0,  # the full sync of 20,000 keys takes seconds on a loaded machine
    "ffmpeg-render-worker": 8.0,
    "dist-training-worker": 8.0,
    "redis-queue-pbkdf2-worker": 8.0,
    "redis-queue-lzma-worker": 8.0,
    "go-queue-worker": 8.0,
}


def test_the_catalog_is_wide_enough() -> None:
    workloads = benign_workloads()
    assert len(workloads) >= 30
    assert {w.family for w in workloads} >= FAMILIES
    assert all(w.label == "benign" and w.variant and w.description for w in workloads)
    assert len({w.name for w in workloads}) == len(workloads)
    assert set(EVIDENCE) == {w.name for w in workloads}, "every workload declares the fact that proves its work"
    lookalikes = [w for w in workloads if w.imitates]
    assert len(lookalikes) >= 20
    assert {w.family for w in lookalikes} >= {"hashing-jobs", "keepalive-clients", "queue-workers",
                                              "yield-heavy-runtimes"}  # fmt: skip


def test_a_full_run_repeats_every_workload_and_lookalikes_more() -> None:
    runs = plan_runs(benign_workloads(), LabOptions(out=Path("unused")))
    repeats: dict[str, int] = {}
    for r in runs:
        repeats[r.workload.name] = max(repeats.get(r.workload.name, 0), r.repeat)
    for w in benign_workloads():
        assert repeats[w.name] >= (3 if w.imitates else 2), w.name
    assert all(20.0 <= r.seconds <= 30.0 for r in runs)  # benign captures: 20-30 s


def _made(w: Workload, workdir: Path, repeat: int) -> tuple[list[str], dict[str, Any]]:
    """What the runner would start for run ``repeat`` (argv and the settings recorded in the facts),
    with this run's random ports and names replaced by placeholders."""
    workdir.mkdir()
    ctx = RunContext(workdir, default_cache_dir(), 20.0, threads=2, repeat=repeat)
    argv = w.command(ctx)
    volatile = {k: str(ctx.facts.pop(k)) for k in ("port", "master_port", "topic") if k in ctx.facts}
    text = []
    for a in argv:
        a = a.replace(str(workdir), "WORKDIR")
        for key, value in volatile.items():
            a = a.replace(value, key.upper())
        text.append(a)
    return text, ctx.facts


@pytest.mark.slow
@pytest.mark.parametrize("workload", benign_workloads(), ids=lambda w: w.name)
def test_each_repeat_runs_differently(workload: Workload, tmp_path: Path) -> None:
    """Threads, load, sizes or periods change with ``ctx.repeat`` (builds go to the lab cache once)."""
    if missing := missing_requirements(workload):
        pytest.skip(f"missing: {missing}")
    made = [_made(workload, tmp_path / f"r{k}", k) for k in (1, 2, 3)]
    assert made[0] != made[1], f"{workload.name}: runs 1 and 2 are the same: {made[0]}"
    if workload.repeats and workload.repeats >= 3:
        assert made[2] not in (made[0], made[1]), f"{workload.name}: run 3 repeats an earlier run: {made[2]}"


@pytest.mark.kernel
@pytest.mark.slow
@pytest.mark.parametrize("workload", benign_workloads(), ids=lambda w: w.name)
def test_every_benign_workload_runs(workload: Workload, tmp_path: Path) -> None:
    require_tracefs()
    seconds = SMOKE_LONGER.get(workload.name, SMOKE_SECONDS)
    manifest = run_lab([workload], LabOptions(out=tmp_path, seconds=seconds, repeat=1))
    (r,) = manifest.runs
    if r.status == "skipped":
        pytest.skip(r.error)
    assert r.status == "ok", f"{r.error}\n{r.facts.get('traceback', '')}"
    assert r.lost_events == 0
    assert r.syscalls > 0
    key = EVIDENCE[workload.name]
    assert r.facts.get(key), f"{workload.name}: no {key} in {r.facts}"
    if workload.imitates:
        assert r.facts["imitates"] == workload.imitates
    assert verify(tmp_path) == []


def _lab_cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    register(app)
    return app


def test_the_ci_subset_is_short_and_representative() -> None:
    ci = filter_workloads(benign_workloads(), None, CI_SUBSET)
    assert 5 <= len(ci) <= 10
    assert len({w.family for w in ci}) >= 5
    assert any(w.imitates for w in ci)
    result = CliRunner().invoke(_lab_cli(), ["lab", "list", "--subset", "ci", "--workloads", "benign"])
    assert result.exit_code == 0, result.output
    listed = {line.split("│")[1].strip() for line in result.output.splitlines() if line.count("│") > 3}
    assert {w.name for w in ci} <= listed
    assert not listed & ({w.name for w in benign_workloads()} - {w.name for w in ci})


def test_lab_list_shows_every_family() -> None:
    result = CliRunner().invoke(_lab_cli(), ["lab", "list"])
    assert result.exit_code == 0, result.output
    for w in benign_workloads():
        assert w.name in result.output
        assert w.family in result.output


def test_openssl_speed_single_process_table_is_a_result(tmp_path: Path) -> None:
    """Without ``-multi`` (one thread) openssl prints only its summary table: that is a result too."""
    from minerlens_lab.benign.hashing import OpensslSpeedAes

    ctx = RunContext(tmp_path, default_cache_dir(), 20.0, threads=1, repeat=2)
    (tmp_path / "speed.log").write_text(
        "CPUINFO: OPENSSL_ia32cap=0xfffa3203078bffff:0x405fc6f1bf07ab\n"
        "The 'numbers' are in 1000s of bytes per second processed.\n"
        "type           1024 bytes\nAES-128-CBC    1420043.36k\n"
    )
    OpensslSpeedAes().check(ctx)
    assert ctx.facts["kbytes_per_s"] == 1420043.36
    (tmp_path / "speed.log").write_text("Doing AES-128-CBC for 3s on 1024 size blocks\n")
    with pytest.raises(RuntimeError, match="no result"):
        OpensslSpeedAes().check(ctx)


def test_lab_fetch_prepares_download_once_inputs(tmp_path: Path) -> None:
    """``minerlens lab fetch`` (the install step) fills the lab cache with what the LuaJIT builds need, so that no
    timed run downloads it; workloads without download-once inputs are passed over."""
    from minerlens_lab.benign.build import luajit_sources

    cache = default_cache_dir()
    result = CliRunner().invoke(
        _lab_cli(), ["lab", "fetch", "--workloads", "make-luajit,idle-cron", "--cache-dir", str(cache)]
    )
    assert result.exit_code == 0, result.output
    assert "ok make-luajit" in result.output
    assert "idle-cron" not in result.output
    assert (luajit_sources(cache) / "Makefile").is_file()
    broken = tmp_path / "not-a-dir"
    broken.write_text("a file where the cache should be")
    failed = CliRunner().invoke(_lab_cli(), ["lab", "fetch", "--workloads", "make-luajit", "--cache-dir", str(broken)])
    assert failed.exit_code == 1
    assert "failed make-luajit" in failed.output


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_lab_fetch_works_from_an_empty_cache(tmp_path: Path) -> None:
    """The cold path of the install step: an empty lab cache gets the LuaJIT sources (pinned sdist from PyPI)."""
    from minerlens_lab.benign.build import luajit_sources

    cold = tmp_path / "empty-cache"
    result = CliRunner().invoke(_lab_cli(), ["lab", "fetch", "--workloads", "make-luajit", "--cache-dir", str(cold)])
    assert result.exit_code == 0, result.output
    assert "ok make-luajit" in result.output
    assert (cold / "sdists" / "lupa-2.8.tar.gz").is_file(), "the pinned sdist, downloaded once"
    assert (luajit_sources(cold) / "Makefile").is_file()
