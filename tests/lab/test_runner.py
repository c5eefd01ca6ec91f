"""The lab runner on real benign workloads: traces, manifest, failures, clean-up.

Also the plan (per-workload repeats and seconds), progress and ETA, and resuming an interrupted
dataset; the benign catalog itself (every workload run for real) is in test_benign.py."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from minerlens_collector.tools.capture import capture_command as real_capture
from minerlens_collector.tools.local_pod import LocalPod, cgroup_hierarchies
from minerlens_core.datasets.manifest import Manifest, load_manifest, verify
from minerlens_core.traces import read_trace
from minerlens_lab.benign.compression import GzipCompress
from minerlens_lab.benign.idle import IdleCron
from minerlens_lab.benign.web import PythonHttpServer
from minerlens_lab.cli import register
from minerlens_lab.runner import (
    DEFAULT_MINER_SECONDS,
    DEFAULT_REPEATS,
    DEFAULT_SECONDS,
    RUN_OVERHEAD_S,
    EtaClock,
    LabOptions,
    plan_runs,
    run_lab,
    run_repeats,
    run_seconds,
)
from minerlens_lab.workload import RunContext, Workload
from typer.testing import CliRunner

from tests.kernel import require_tracefs

SECONDS = 3.0


class ExitsAtOnce(Workload):
    name = "test-exits-1"
    family = "test"
    label = "benign"

    def command(self, ctx: RunContext) -> list[str]:
        return ["/bin/sh", "-c", "exit 1"]


class PrepareRaises(Workload):
    name = "test-prepare-raises"
    family = "test"
    label = "benign"

    def prepare(self, ctx: RunContext) -> None:
        msg = "no such input"
        raise FileNotFoundError(msg)

    def command(self, ctx: RunContext) -> list[str]:
        return ["true"]


class NeedsNothingThere(Workload):
    name = "test-missing-tool"
    family = "test"
    label = "benign"
    requires = ("minerlens-no-such-tool",)

    def command(self, ctx: RunContext) -> list[str]:
        return ["true"]


def _descendants(pid: int) -> list[tuple[int, str]]:
    """Live (non-zombie) processes below ``pid``."""
    children: dict[int, list[int]] = {}
    info: dict[int, tuple[str, str]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        children.setdefault(int(ppid), []).append(int(d.name))
        info[int(d.name)] = (comm, state)
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        if info[p][1] != "Z":
            out.append((p, info[p][0]))
        todo += children.get(p, [])
    return out


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Manifest, Path, list[str]]:
    require_tracefs()
    out = tmp_path_factory.mktemp("dataset")
    pods: list[str] = []

    def spy(*args: Any, on_start: Callable[[LocalPod], None] | None = None, **kw: Any) -> Any:
        def started(pod: LocalPod) -> None:
            pods.append(pod.cgroup_path)
            if on_start is not None:
                on_start(pod)

        return real_capture(*args, on_start=started, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr("minerlens_lab.runner.capture_command", spy)
    try:
        workloads = [
            ExitsAtOnce(),
            PrepareRaises(),
            NeedsNothingThere(),
            IdleCron(),
            GzipCompress(),
            PythonHttpServer(),
        ]
        manifest = run_lab(workloads, LabOptions(out=out, seconds=SECONDS, repeat=1))
    finally:
        mp.undo()
    return manifest, out, pods


def _runs(manifest: Manifest) -> dict[str, Any]:
    return {r.workload: r for r in manifest.runs}


@pytest.mark.kernel
def test_manifest_matches_the_trace_files(lab_run: tuple[Manifest, Path, list[str]]) -> None:
    manifest, out, _ = lab_run
    assert verify(out) == []
    assert load_manifest(out) == manifest
    assert manifest.machine["kernel"] == os.uname().release
    assert manifest.machine["arch"] == os.uname().machine
    assert manifest.finished_at is not None
    assert {"python", "numpy", "minerlens-lab"} <= set(manifest.python_versions)
    assert "gzip" in manifest.tool_versions
    csv_lines = (out / "manifest.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(manifest.runs)


@pytest.mark.kernel
def test_each_trace_is_labelled_and_complete(lab_run: tuple[Manifest, Path, list[str]]) -> None:
    manifest, out, _ = lab_run
    runs = _runs(manifest)
    for name, family in [("idle-cron", "idle"), ("gzip-compress", "compression"), ("python-http-server", "web")]:
        r = runs[name]
        assert r.status == "ok", r.error
        assert r.file == f"traces/{name}-r1.parquet"
        trace = read_trace(out / r.file)
        assert (trace.meta.label, trace.meta.workload, trace.meta.family) == ("benign", name, family)
        assert trace.meta.variant == r.variant != ""
        assert len(trace) == r.syscalls > 0
        assert trace.meta.lost_events == r.lost_events == 0
        assert 0 < r.seconds <= SECONDS + 1
        assert r.syscalls_per_s == pytest.approx(r.syscalls / r.seconds, rel=0.01)
        assert r.cpu_seconds is not None
        assert r.top_syscalls[0].count >= r.top_syscalls[-1].count
        assert set(trace.table.column("namespace").unique().to_pylist()) == {"lab-benign"}
    assert runs["idle-cron"].facts["heartbeats"] >= 1
    assert runs["python-http-server"].facts["client_requests"] > 0
    assert runs["gzip-compress"].cpu_cores is not None
    assert runs["gzip-compress"].cpu_cores > 0.1  # busy compressing (the machine may be shared)


@pytest.mark.kernel
def test_failures_are_reported_and_the_rest_runs(lab_run: tuple[Manifest, Path, list[str]]) -> None:
    manifest, out, _ = lab_run
    runs = _runs(manifest)
    assert [r.workload for r in manifest.runs][:3] == ["test-exits-1", "test-prepare-raises", "test-missing-tool"]
    assert runs["test-exits-1"].status == "failed"
    assert "exited with status 1" in runs["test-exits-1"].error
    assert runs["test-prepare-raises"].status == "failed"
    assert "FileNotFoundError: no such input" in runs["test-prepare-raises"].error
    assert runs["test-missing-tool"].status == "skipped"
    assert "minerlens-no-such-tool" in runs["test-missing-tool"].error
    assert manifest.counts() == {"ok": 3, "failed": 2, "skipped": 1}
    for r in manifest.runs:
        if r.status != "ok":
            assert r.file is None
    assert sorted(p.name for p in (out / "traces").iterdir()) == [
        "gzip-compress-r1.parquet",
        "idle-cron-r1.parquet",
        "python-http-server-r1.parquet",
    ]


@pytest.mark.kernel
def test_nothing_of_the_run_is_left(lab_run: tuple[Manifest, Path, list[str]]) -> None:
    manifest, out, pods = lab_run
    assert len(pods) == 4  # the three ok runs and the one that exited at once
    for cgroup in pods:
        pod_dir = cgroup.rsplit("/", 1)[0]
        for h in cgroup_hierarchies():
            assert not (h.mount / pod_dir.lstrip("/")).exists(), f"{h.mount}{pod_dir} left behind"
    assert _descendants(os.getpid()) == []
    comms = set()
    for r in manifest.runs:
        if r.file:
            t = read_trace(out / r.file).table
            comms |= {(p, c) for p, c in zip(t.column("pid").to_pylist(), t.column("comm").to_pylist(), strict=True)}
    for pid, comm in comms:
        try:
            alive = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        assert alive != comm, f"pid {pid} ({comm}) of the run is still alive"
    assert not list(Path("/tmp").glob("minerlens-lab-*/test-*"))


@pytest.mark.kernel
def test_verify_catches_a_tampered_dataset(lab_run: tuple[Manifest, Path, list[str]], tmp_path: Path) -> None:
    _, out, _ = lab_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    data = json.loads((copy / "manifest.json").read_text())
    ok = [r for r in data["runs"] if r["status"] == "ok"]
    ok[0]["syscalls"] += 1
    ok[1]["sha256"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(data))
    (copy / "traces" / "stray.parquet").write_bytes(b"")
    problems = verify(copy)
    assert any("syscalls" in p for p in problems)
    assert any("sha256" in p for p in problems)
    assert any("stray.parquet" in p for p in problems)


# ---- the plan: repeats and seconds per workload, progress and ETA --------------------------------


class Planned(Workload):
    name = "test-planned"
    family = "test"
    label = "benign"
    repeats = 3
    seconds = 7.0

    def command(self, ctx: RunContext) -> list[str]:
        return ["true"]


class PlannedMiner(Planned):
    name = "test-planned-miner"
    label = "miner"
    repeats = None
    seconds = None


def test_the_plan_takes_each_workloads_repeats_and_seconds_unless_overridden() -> None:
    w, miner, default = Planned(), PlannedMiner(), ExitsAtOnce()
    plain = LabOptions(out=Path("unused"))
    assert [(r.workload.name, r.repeat, r.seconds) for r in plan_runs([w, miner, default], plain)] == [
        ("test-planned", 1, 7.0),
        ("test-planned", 2, 7.0),
        ("test-planned", 3, 7.0),
        ("test-planned-miner", 1, DEFAULT_MINER_SECONDS),
        ("test-planned-miner", 2, DEFAULT_MINER_SECONDS),
        ("test-exits-1", 1, DEFAULT_SECONDS),
        ("test-exits-1", 2, DEFAULT_SECONDS),
    ]
    assert DEFAULT_REPEATS >= 2
    forced = LabOptions(out=Path("unused"), seconds=3.0, repeat=1)
    assert [(r.repeat, r.seconds) for r in plan_runs([w, miner], forced)] == [(1, 3.0), (1, 3.0)]
    miners_longer = LabOptions(out=Path("unused"), seconds=3.0, miner_seconds=60.0)
    assert (run_seconds(w, miners_longer), run_seconds(miner, miners_longer)) == (3.0, 60.0)
    assert run_repeats(w, miners_longer) == 3
    skipped = plan_runs([NeedsNothingThere()], plain)
    assert skipped[0].missing == ("minerlens-no-such-tool",)
    assert [r.planned_s for r in skipped] == [0.0, 0.0]  # will be skipped: costs no time
    assert plan_runs([w], plain)[0].planned_s == 7.0 + RUN_OVERHEAD_S


def test_the_eta_is_the_remaining_plan_at_the_measured_pace() -> None:
    runs = plan_runs([Planned()], LabOptions(out=Path("unused")))  # 3 runs of 7 s + overhead each
    each = runs[0].planned_s
    clock = EtaClock(remaining_s=3 * each)
    assert clock.eta() == pytest.approx(3 * each)  # nothing measured yet: the plan itself
    clock.done(runs[0], took_s=2 * each)  # the first run took twice its plan
    assert clock.eta() == pytest.approx(2 * each * 2)
    clock.done(runs[1], took_s=100 * each)  # one pathological run: the pace is bounded
    assert clock.eta() == pytest.approx(each * 3.0)
    clock.done(runs[2], took_s=each)
    assert clock.eta() == 0.0


def _lab_cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    register(app)
    return app


@pytest.mark.kernel
def test_lab_run_prints_the_plan_progress_and_eta(tmp_path: Path) -> None:
    require_tracefs()
    out = tmp_path / "ds"
    args = ["lab", "run", "--out", str(out), "--workloads", "idle-cron,gzip-compress", "--seconds", "2"]
    result = CliRunner().invoke(_lab_cli(), args)
    assert result.exit_code == 0, result.output
    text = result.output
    # each workload's own repeats (2 for these), in catalog order, each announced with k/n, elapsed and ETA
    assert "plan: 4 runs of 2 workloads, 0:00:08 of capture" in text
    for k, (name, rep) in enumerate(
        [("gzip-compress", 1), ("gzip-compress", 2), ("idle-cron", 1), ("idle-cron", 2)], start=1
    ):
        assert re.search(rf"\[{k}/4\] {name} r{rep} \(2 s\)  elapsed \d:\d\d:\d\d  ETA \d:\d\d:\d\d", text), text
        assert re.search(rf"ok +{name} r{rep}: .* syscalls/s.*\[{k}/4, elapsed .*, ETA \d:\d\d:\d\d\]", text), text
    assert "ETA 0:00:00]" in text  # after the last run nothing is left
    manifest = load_manifest(out)
    assert [(r.workload, r.repeat, r.status) for r in manifest.runs] == [
        ("gzip-compress", 1, "ok"),
        ("gzip-compress", 2, "ok"),
        ("idle-cron", 1, "ok"),
        ("idle-cron", 2, "ok"),
    ]
    assert verify(out) == []
    # the repeats really differ: the cron loop's pause and gzip's level change with the repeat
    runs = {(r.workload, r.repeat): r.facts for r in manifest.runs}
    assert runs[("idle-cron", 1)]["sleep_s"] != runs[("idle-cron", 2)]["sleep_s"]
    assert runs[("gzip-compress", 1)]["level"] != runs[("gzip-compress", 2)]["level"]


def _lab_run_process(out: Path, *extra: str) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("minerlens")
    argv = [str(exe), "lab", "run", "--out", str(out), "--workloads", "idle-cron,gzip-compress,python-http-server"]
    return subprocess.Popen([*argv, "--seconds", "3", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_for_runs(out: Path, n: int, proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError, ValueError):
            if len(load_manifest(out).runs) >= n:
                return
        time.sleep(0.1)
    msg = f"the lab run did not record {n} runs (exit {proc.poll()})"
    raise AssertionError(msg)


def _gone(pid: int, comm: str, within_s: float = 5.0) -> bool:
    """The process ``pid`` (named ``comm``) exited within ``within_s``: no such process, another process with
    that pid, or a zombie waiting to be reaped (dead; this VM's pid 1 may reap late)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            same = Path(f"/proc/{pid}/comm").read_text().strip() == comm
        except OSError:
            return True
        if not same or stat.rpartition(")")[2].split()[0] == "Z":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


@pytest.mark.kernel
@pytest.mark.slow
def test_an_interrupted_dataset_resumes(tmp_path: Path) -> None:
    require_tracefs()
    out = tmp_path / "ds"
    first = _lab_run_process(out)
    try:
        _wait_for_runs(out, 2, first)
        time.sleep(1.5)  # the third run is being captured
        running = _descendants(first.pid)
        assert running, "the third run's pod should be running"
        first.send_signal(signal.SIGTERM)
        output = first.communicate(timeout=60)[0].decode()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 130, output
    assert "--resume continues" in output
    interrupted = load_manifest(out)
    assert interrupted.interrupted
    assert [(r.workload, r.repeat, r.status) for r in interrupted.runs] == [
        ("python-http-server", 1, "ok"),  # the catalog's order
        ("python-http-server", 2, "ok"),
    ]
    assert verify(out) == []  # the run cut short left no trace file behind
    for pid, comm in running:  # the pod's processes are gone with the lab run
        assert _gone(pid, comm), f"{comm} ({pid}) survived"
    # damage one kept run: a trace that no longer verifies is run again, the other one is kept
    damaged = out / "traces" / "python-http-server-r2.parquet"
    damaged.write_bytes(damaged.read_bytes()[:-100])
    (out / "traces" / "stray-r1.parquet").write_bytes(b"partial")

    second = _lab_run_process(out, "--resume")
    output = second.communicate(timeout=300)[0].decode()
    assert second.returncode == 0, output
    assert "plan: 5 runs of 3 workloads" in output
    assert "(1 ok runs kept from" in output
    resumed = load_manifest(out)
    assert [(r.workload, r.repeat, r.status) for r in resumed.runs] == [
        ("python-http-server", 1, "ok"),
        ("python-http-server", 2, "ok"),
        ("gzip-compress", 1, "ok"),
        ("gzip-compress", 2, "ok"),
        ("idle-cron", 1, "ok"),
        ("idle-cron", 2, "ok"),
    ]
    assert resumed.runs[0] == interrupted.runs[0]  # kept as it was
    assert resumed.runs[1].started_at != interrupted.runs[1].started_at  # run again
    assert not resumed.interrupted
    assert resumed.finished_at is not None
    assert resumed.created_at == interrupted.created_at
    assert resumed.options["resumed"] == 1
    assert verify(out) == []  # every file matches, the stray partial file is gone
    assert not (out / "traces" / "stray-r1.parquet").exists()
