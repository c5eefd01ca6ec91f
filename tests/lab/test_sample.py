"""The committed sample dataset is complete and consistent, and sampling keeps a dataset verifiable."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from minerlens_core.datasets.manifest import load_manifest, verify
from minerlens_core.traces import read_trace
from minerlens_lab.catalog import catalog
from minerlens_lab.sample import make_sample

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


def test_committed_sample_matches_its_manifest() -> None:
    assert verify(SAMPLE) == []


def test_committed_sample_covers_every_family_and_both_labels() -> None:
    runs = [r for r in load_manifest(SAMPLE).runs if r.status == "ok"]
    families = {r.family for r in runs}
    expected = {w.family for w in catalog().values() if w.name != "torch-mlp"}
    assert expected <= families, expected - families
    assert {r.label for r in runs} == {"miner", "benign"}
    assert all(r.lost_events == 0 for r in runs)


def test_sampling_takes_a_middle_slice(tmp_path: Path) -> None:
    n = make_sample(SAMPLE, tmp_path / "s", max_syscalls=500)
    assert n > 0
    assert verify(tmp_path / "s") == []
    run = next(r for r in load_manifest(tmp_path / "s").runs if r.status == "ok")
    assert run.file is not None
    small = read_trace(tmp_path / "s" / run.file)
    full = read_trace(SAMPLE / run.file)
    assert len(small) == min(500, len(full))
    offset = small.meta.extra["sample"]["offset"]
    assert offset == (len(full) - len(small)) // 2
    assert small.table.column("tid").to_pylist() == full.table.column("tid").to_pylist()[offset : offset + len(small)]


def test_sampling_keeps_the_samples_around_the_slice(tmp_path: Path) -> None:
    """A slice keeps the resource samples of its span and the ones just outside it (windows stay bracketed)."""
    from minerlens_core.datasets.manifest import Manifest, RunRecord, write_manifest
    from minerlens_core.schemas.resources import ResourceSnapshot
    from minerlens_core.traces import StreamSample, TraceMeta, write_trace

    full = read_trace(next(SAMPLE.joinpath("traces").glob("*.parquet")))
    table = full.table.slice(0, 1000)
    ts = table.column("ts_ns").to_pylist()
    t0, t1 = ts[0], ts[-1]
    step = max((t1 - t0) // 20, 1)
    uid = table.column("pod_uid")[0].as_py()
    samples = [StreamSample(pod_uid=uid, sample=ResourceSnapshot(ts_ns=t0 - 3 * step + i * step)) for i in range(27)]
    src = tmp_path / "src"
    write_trace(src / "traces" / "t.parquet", table, TraceMeta(source="test", label="benign"), samples)
    run = RunRecord(
        workload="t", family="f", label="benign", variant="v", repeat=1, status="ok", file="traces/t.parquet",
        seconds=1.0,
    )  # fmt: skip
    write_manifest(src, Manifest(created_at=datetime.now(UTC), minerlens_version="test", runs=[run]))
    assert make_sample(src, tmp_path / "dst", max_syscalls=100) == 1
    cut = read_trace(tmp_path / "dst" / "traces" / "t.parquet")
    lo, hi = cut.table.column("ts_ns")[0].as_py(), cut.table.column("ts_ns")[99].as_py()
    kept = [s.sample.ts_ns for s in cut.resources]
    assert kept == sorted(kept)
    assert sum(t < lo for t in kept) == 1
    assert sum(t > hi for t in kept) == 1
    assert [t for t in kept if lo <= t <= hi] == [s.sample.ts_ns for s in samples if lo <= s.sample.ts_ns <= hi]


def test_selecting_runs_keeps_a_verifiable_dataset_without_the_superseded_ones(tmp_path: Path) -> None:
    """`lab select`: the miner runs but one family, and a named benign workload, with their traces unchanged."""
    from minerlens_lab.select import select_runs

    runs = [r for r in load_manifest(SAMPLE).runs if r.status == "ok"]
    family = next(r.family for r in runs if r.label == "miner")
    benign = next(r.workload for r in runs if r.label == "benign")
    n = select_runs(SAMPLE, tmp_path / "s", workloads=f"miner,{benign}", exclude=family)
    kept = load_manifest(tmp_path / "s")
    assert verify(tmp_path / "s") == []
    want = {r.file for r in runs if (r.label == "miner" and r.family != family) or r.workload == benign}
    assert {r.file for r in kept.runs} == want
    assert n == len(want) > 0
    assert kept.options["select"] == {"source": str(SAMPLE), "workloads": f"miner,{benign}", "exclude": family}
