"""The manifest's per-run fields from the workload: implementation, repeat (seen by the workload as
``ctx.repeat``), per-workload repeats and capture seconds, look-alike ``imitates``; older manifests
still load; verify() catches a run listed twice; only verified ok runs are reusable for a resume."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from minerlens_core.datasets.manifest import load_manifest, reusable_runs, verify
from minerlens_lab.runner import LabOptions, run_lab
from minerlens_lab.workload import RunContext, Workload

from tests.kernel import require_tracefs

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


class RecordsItsRepeat(Workload):
    """Writes the repeat it was given (and a per-repeat thread count) from inside the pod."""

    name = "test-records-repeat"
    family = "test"
    label = "benign"
    variant = "v"
    implementation = "test-impl-1.0"
    imitates = "nothing: a test"
    repeats = 2
    seconds = 1.5

    def command(self, ctx: RunContext) -> list[str]:
        ctx.facts["threads"] = (4, 1)[(ctx.repeat - 1) % 2]
        return ["/bin/sh", "-c", f"echo {ctx.repeat} >{ctx.workdir}/repeat; sleep 30"]

    def check(self, ctx: RunContext) -> None:
        ctx.facts["repeat_seen_in_pod"] = int((ctx.workdir / "repeat").read_text())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tracefs()
    out = tmp_path_factory.mktemp("manifest")
    run_lab([RecordsItsRepeat()], LabOptions(out=out))  # no override: the workload's repeats and seconds
    return out


@pytest.mark.kernel
def test_runs_follow_the_workloads_repeats_and_seconds(dataset: Path) -> None:
    runs = load_manifest(dataset).runs
    assert [(r.repeat, r.status) for r in runs] == [(1, "ok"), (2, "ok")]
    for r in runs:
        assert 1.0 <= r.seconds <= 2.5, r.seconds  # 1.5 s, not the 20 s default
        assert r.facts["repeat_seen_in_pod"] == r.repeat
    assert [r.facts["threads"] for r in runs] == [4, 1]
    assert verify(dataset) == []


@pytest.mark.kernel
def test_implementation_and_imitates_reach_the_manifest(dataset: Path) -> None:
    runs = load_manifest(dataset).runs
    assert {r.implementation for r in runs} == {"test-impl-1.0"}
    assert {r.facts["imitates"] for r in runs} == {"nothing: a test"}
    rows = list(csv.DictReader((dataset / "manifest.csv").open()))
    assert [row["implementation"] for row in rows] == ["test-impl-1.0"] * 2
    assert [json.loads(row["facts"])["repeat_seen_in_pod"] for row in rows] == [1, 2]


@pytest.mark.kernel
def test_a_run_listed_twice_is_a_problem(dataset: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    data = json.loads((copy / "manifest.json").read_text())
    data["runs"].append(data["runs"][0])
    (copy / "manifest.json").write_text(json.dumps(data))
    assert any("listed more than once" in p for p in verify(copy))


@pytest.mark.kernel
def test_only_verified_ok_runs_are_reusable(dataset: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    assert [r.repeat for r in reusable_runs(copy)[1]] == [1, 2]
    data = json.loads((copy / "manifest.json").read_text())
    data["runs"][0]["syscalls"] += 1  # no longer matches its file
    data["runs"][1]["status"], data["runs"][1]["file"], data["runs"][1]["sha256"] = "failed", None, None
    (copy / "manifest.json").write_text(json.dumps(data))
    manifest, kept = reusable_runs(copy)
    assert manifest is not None
    assert kept == []
    (copy / "manifest.json").write_text("{not json")
    assert reusable_runs(copy) == (None, [])


def test_manifests_without_the_new_fields_still_load() -> None:
    raw = json.loads((SAMPLE / "manifest.json").read_text())
    for run in raw["runs"]:
        run.pop("implementation", None)
    manifest = load_manifest(SAMPLE).model_validate(raw)
    assert all(r.implementation == "" for r in manifest.runs)
