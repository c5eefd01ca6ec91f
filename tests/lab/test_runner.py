"""The lab runner on real benign workloads: traces, manifest, failures, clean-up, and the whole catalog."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from minerlens_collector.capture import capture_command as real_capture
from minerlens_collector.local_pod import LocalPod, cgroup_hierarchies
from minerlens_core.traces import read_trace
from minerlens_lab.benign import benign_workloads
from minerlens_lab.benign.compression import GzipCompress
from minerlens_lab.benign.idle import IdleCron
from minerlens_lab.benign.web import PythonHttpServer
from minerlens_lab.cli import register
from minerlens_lab.manifest import Manifest, load_manifest, verify
from minerlens_lab.runner import LabOptions, run_lab
from minerlens_lab.workload import RunContext, Workload
from typer.testing import CliRunner

from tests.kernel import require_tracefs

SECONDS = 3.0
FAMILIES = {"web", "kv-cache", "database", "batch-cpu", "compression", "ml-training", "build", "idle"}


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
        manifest = run_lab(workloads, LabOptions(out=out, seconds=SECONDS))
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


def _cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    register(app)
    return app


def test_lab_list_shows_every_family() -> None:
    result = CliRunner().invoke(_cli(), ["lab", "list"])
    assert result.exit_code == 0, result.output
    families = {w.family for w in benign_workloads()}
    assert families >= FAMILIES
    for family in families:
        assert family in result.output
    for w in benign_workloads():
        assert w.name in result.output


def test_the_benign_catalog_is_wide_enough() -> None:
    workloads = benign_workloads()
    assert len(workloads) >= 14
    assert {w.family for w in workloads} >= FAMILIES
    assert all(w.label == "benign" and w.variant and w.description for w in workloads)
    assert len({w.name for w in workloads}) == len(workloads)


# when a workload makes few syscalls by nature (CPU-bound, idle), the fact that proves it did its work
EVIDENCE = {
    "sysbench-cpu": "reports",
    "sysbench-memory": "reports",
    "stress-ng-cpu-all": "bogo_ops_cpu",
    "stress-ng-matrix": "bogo_ops_matrix",
    "idle-redis": "health_checks_ok",
    "idle-nginx": "health_checks_ok",
    "idle-cron": "heartbeats",
}


@pytest.mark.kernel
@pytest.mark.slow
@pytest.mark.parametrize("workload", benign_workloads(), ids=lambda w: w.name)
def test_every_benign_workload_runs(workload: Workload, tmp_path: Path) -> None:
    require_tracefs()
    manifest = run_lab([workload], LabOptions(out=tmp_path, seconds=SECONDS))
    (r,) = manifest.runs
    if r.status == "skipped":
        pytest.skip(r.error)
    assert r.status == "ok", f"{r.error}\n{r.facts.get('traceback', '')}"
    assert r.lost_events == 0
    if r.syscalls <= 1000:
        key = EVIDENCE.get(workload.name)
        assert key is not None, f"{workload.name}: only {r.syscalls} syscalls and no evidence fact declared"
        assert r.facts.get(key), f"{workload.name}: {r.syscalls} syscalls and no {key} in {r.facts}"
    assert verify(tmp_path) == []
