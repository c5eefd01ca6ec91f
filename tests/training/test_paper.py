"""The paper's setup: raw 35-gram frames per run, the random frame split it validated on, and LOFO beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from minerlens_core.datasets.manifest import load_manifest
from minerlens_core.features import FeatureSpec, chunks_from_table, frames
from minerlens_core.traces import read_trace
from minerlens_training.paper import (
    FRAME_N,
    PAPER_REPORTED_ACCURACY,
    count_paper_fits,
    evaluate_paper,
    frames_dataset,
    paper_splits,
    run_frames,
)


def test_run_frames_are_contiguous_overlapping_and_from_the_middle() -> None:
    ids = np.arange(1000, dtype=np.int16) % 300
    F = run_frames(ids, n=35, per_run=10)
    assert F.shape == (10, 35)
    start = (1000 - 35 + 1 - 10) // 2
    assert np.array_equal(F, frames(ids[start : start + 10 + 34], 35))
    assert np.array_equal(F[1:, :-1], F[:-1, 1:])  # stride 1: neighbours share 34 calls
    assert run_frames(ids[:40], 35, 100).shape == (6, 35)  # fewer than per_run: every frame
    assert run_frames(ids[:34], 35, 100).shape == (0, 35)  # shorter than a frame: none


def test_frames_dataset_holds_each_runs_syscalls(synthetic_dir: Path) -> None:
    spec = FeatureSpec.default()
    fd = frames_dataset(synthetic_dir, spec, per_run=50)
    assert fd.X.shape == fd.sequences.shape == (len(fd), FRAME_N)
    assert np.array_equal(fd.X, fd.sequences.astype(np.float32))
    assert fd.runs[-1].workload == "miner-yield-quiet"  # 300 calls: no 1000-call window, but frames
    assert fd.runs[-1].n_windows == 50
    for rec in load_manifest(synthetic_dir).runs:
        run = next(r for r in fd.runs if r.workload == rec.workload)
        assert run.n_windows == min(50, max(0, rec.syscalls - FRAME_N + 1))
        ids = np.concatenate([c.ids for c in chunks_from_table(read_trace(synthetic_dir / rec.file).table)])
        assert len(ids) == rec.syscalls  # every call of the run (no window policy), cheap syscalls included
        rows = slice(run.start, run.start + run.n_windows)
        assert np.array_equal(fd.sequences[rows], run_frames(ids, FRAME_N, 50))
        assert set(fd.y[rows].tolist()) <= {run.y}


def test_paper_split_is_random_over_frames_and_lofo_is_not(synthetic_dir: Path) -> None:
    fd = frames_dataset(synthetic_dir, per_run=40)
    splits = paper_splits(fd)
    (random,) = splits["paper-random-70/30"]
    assert abs(random.test.size / len(fd) - 0.3) < 0.02
    shared = np.intersect1d(fd.run[random.train], fd.run[random.test])
    assert shared.size > 0, "the paper's split puts frames of one run on both sides"
    fam = fd.column("family")
    for s in splits["lofo"]:
        assert not set(fam[s.train].tolist()) & {s.heldout, s.counterpart}


def test_evaluate_paper_reports_both_setups(synthetic_dir: Path) -> None:
    fd = frames_dataset(synthetic_dir, per_run=24)
    seen: list[str] = []
    out = evaluate_paper(fd, models=("tree", "lstm"), progress=seen.append)
    assert len(seen) == count_paper_fits(fd, ("tree", "lstm"))
    assert out["frame_n"] == FRAME_N
    assert out["frames"] == len(fd)
    assert out["reported_accuracy"] == {"tree": PAPER_REPORTED_ACCURACY["tree"], "lstm": 0.789}
    for model in ("tree", "lstm"):
        res = out["results"][model]
        # the random split scores 30 % of the frames; LOFO pools every frame once (its family held out)
        assert res["paper-random-70/30"]["window"]["n"] == round(0.3 * len(fd))
        assert res["lofo"]["window"]["n"] == len(fd)
        for scheme in res.values():
            w = scheme["window"]
            assert 0.0 <= w["accuracy"] <= 1.0
            assert {"f1", "precision", "recall", "kappa", "roc_auc", "log_loss", "fpr"} <= w.keys()
