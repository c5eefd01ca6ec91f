"""The committed sample dataset is complete and consistent, and sampling keeps a dataset verifiable."""

from __future__ import annotations

from pathlib import Path

from minerlens_core.traces import read_trace
from minerlens_lab.catalog import catalog
from minerlens_lab.manifest import load_manifest, verify
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
