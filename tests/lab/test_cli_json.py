"""``minerlens lab run --json``: the end-of-run summary as one JSON array on stdout, progress on stderr.

The runner is replaced by one that reports two finished runs (one ok, one failed) through the same hooks, so the
command's whole output path runs without a kernel; ``test_lab_run_json_for_real`` runs one real workload."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from minerlens_core.datasets.manifest import Manifest, RunRecord, SyscallCount
from minerlens_lab.cli import SUMMARY_COLUMNS, register
from minerlens_lab.runner import LabOptions, PlannedRun, Progress, RunHooks
from minerlens_lab.workload import Workload
from typer.testing import CliRunner

from tests.kernel import require_tracefs

KEYS = {"workload", "r", "status", "syscalls", "syscalls_per_s", "lost", "cpu_cores", "top_syscalls"}


def _lab_cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    register(app)
    return app


def _runs() -> list[RunRecord]:
    ok = RunRecord(
        workload="gzip-compress", family="compression", label="benign", repeat=1, status="ok", seconds=2.0,
        syscalls=123_456, lost_events=3, syscalls_per_s=61_728.04, cpu_cores=0.98765,
        top_syscalls=[SyscallCount(syscall="read", count=60_000), SyscallCount(syscall="write", count=50_000)],
    )  # fmt: skip
    failed = RunRecord(
        workload="idle-cron", family="idle", label="benign", repeat=2, status="failed",
        error="the pod's program exited at once with status 1; " + "x" * 100,
    )  # fmt: skip
    return [ok, failed]


@pytest.fixture
def fake_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    def run_lab(workloads: list[Workload], opts: LabOptions, hooks: RunHooks) -> Manifest:
        runs = _runs()
        plan = [PlannedRun(workloads[0], r.repeat, 2.0) for r in runs]
        hooks.planned(plan, 10.0, 0)
        for i, (p, r) in enumerate(zip(plan, runs, strict=True), start=1):
            progress = Progress(i, len(runs), elapsed_s=float(i), eta_s=float(len(runs) - i), planned_s=10.0)
            hooks.started(p, progress)
            hooks.finished(r, progress)
        return Manifest(created_at=datetime.now(UTC), minerlens_version="0", runs=runs)

    monkeypatch.setattr("minerlens_lab.runner.run_lab", run_lab)


def test_lab_run_json_prints_the_summary_rows(fake_lab: None, tmp_path: Path) -> None:
    args = ["lab", "run", "--out", str(tmp_path / "ds"), "--workloads", "gzip-compress", "--json"]
    result = CliRunner().invoke(_lab_cli(), args)
    assert result.exit_code == 1, result.output  # a failed run: exit 1, the summary is printed all the same
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    assert [set(r) for r in rows] == [KEYS, KEYS]
    ok, failed = rows
    assert ok == {
        "workload": "gzip-compress", "r": 1, "status": "ok", "syscalls": 123_456, "syscalls_per_s": 61_728.0,
        "lost": 3, "cpu_cores": 0.988, "top_syscalls": "read=60000, write=50000",
    }  # fmt: skip
    assert failed["status"] == "failed"
    assert failed["cpu_cores"] is None
    assert failed["top_syscalls"] == _runs()[1].error, "the error in full, not cut for a table cell"
    # progress and the closing line are on stderr, not mixed into the JSON
    assert "plan: 2 runs" in result.stderr
    assert "1 ok, 1 failed, 0 skipped" in result.stderr


def test_lab_run_without_json_prints_the_table(fake_lab: None, tmp_path: Path) -> None:
    result = CliRunner().invoke(_lab_cli(), ["lab", "run", "--out", str(tmp_path / "ds"), "--workloads", "gzip*"])
    assert result.exit_code == 1, result.output
    for column in SUMMARY_COLUMNS:
        assert column in result.stdout
    assert "123,456" in result.stdout
    assert "read=60000, write=50000" in result.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)


def test_lab_list_json_is_the_catalog() -> None:
    result = CliRunner().invoke(_lab_cli(), ["lab", "list", "--workloads", "benign", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows
    assert all(r["label"] == "benign" for r in rows)
    assert {"name", "family", "runs", "s", "available"} <= set(rows[0])


@pytest.mark.kernel
def test_lab_run_json_for_real(tmp_path: Path) -> None:
    require_tracefs()
    args = ["lab", "run", "--out", str(tmp_path / "ds"), "--workloads", "idle-cron", "--repeat", "1"]
    result = CliRunner().invoke(_lab_cli(), [*args, "--seconds", "1", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["workload"] == "idle-cron"
    assert row["status"] == "ok"
    assert row["r"] == 1
    assert isinstance(row["syscalls"], int)
    assert row["syscalls"] > 0
