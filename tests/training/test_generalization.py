"""Splits that hold whole families and whole miner implementations out, the per-window label rule for process
windows, and the generalization report (implementations held out, benign families one by one, alerts per
benign pod-hour, time to alert), on a synthetic lab with two miner implementations and a look-alike family."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from minerlens_core.features import FeatureSpec, WindowPolicy, vectorize_many, windows_from_trace
from minerlens_core.traces import Trace
from minerlens_training.datasets import POD, Block, Dataset, build_dataset, load_dataset
from minerlens_training.evaluate import EvalConfig, evaluate, fit_split
from minerlens_training.report import render_markdown
from minerlens_training.splits import (
    Split,
    capped_rows,
    implementation_splits,
    lofo_splits,
    run_kfold_splits,
)

from tests.training.synthetic import SynthRun, write_lab

SPEC = FeatureSpec.build(window=WindowPolicy.time(1.0))
MINER_GAP = 5_000_000.0  # 5 ms between a miner's syscalls: 200/s
BENIGN_GAP = 2_000_000.0

RUNS = [
    SynthRun("web-a", "web", "benign", "a", "web", 4000, mean_gap_ns=BENIGN_GAP),
    SynthRun("web-b", "web", "benign", "b", "web", 4000, mean_gap_ns=BENIGN_GAP),
    SynthRun("batch-a", "batch", "benign", "a", "batch", 4000, mean_gap_ns=BENIGN_GAP),
    SynthRun("batch-b", "batch", "benign", "b", "batch", 4000, mean_gap_ns=BENIGN_GAP),
    SynthRun("sha-job", "hashing-jobs", "benign", "jvm", "batch", 3000, mean_gap_ns=MINER_GAP),
    SynthRun("keepalive", "keepalive-clients", "benign", "tcp", "web", 3000, mean_gap_ns=BENIGN_GAP),
    # XMRig: one run with the new manifest field, the others as an older manifest (derived from the family)
    SynthRun(
        "xmrig-yield",
        "miner-xmrig",
        "miner",
        "yield",
        "yield",
        3000,
        implementation="xmrig-6.16.0",
        facts={"miner_comms": ["xmrig"]},
        comm="xmrig",
        mean_gap_ns=MINER_GAP,
    ),
    SynthRun("xmrig-no-yield", "miner-xmrig", "miner", "no-yield", "spin", 3000, mean_gap_ns=MINER_GAP),
    SynthRun("xmrig-noise-90", "miner-xmrig", "miner", "noise-90", "spin", 1000, noise=0.9, mean_gap_ns=MINER_GAP),
    SynthRun("randomx-1t", "miner-randomx", "miner", "1t", "spin", 3000, mean_gap_ns=MINER_GAP),
    SynthRun(
        "randomx-throttle-12", "miner-randomx", "miner", "throttle-12", "spin", 3000, implementation="minerlens-c"
    ),
    SynthRun("scrypt-yield", "miner-scrypt", "miner", "1t-yield", "yield", 3000, mean_gap_ns=MINER_GAP),
]


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_lab(tmp_path_factory.mktemp("generalization-lab"), RUNS)


@pytest.fixture(scope="module")
def gen_ds(gen_dir: Path) -> Dataset:
    return load_dataset(gen_dir, SPEC, sequences=False)


def _check_no_run_on_both_sides(ds: Dataset, splits: list[Split]) -> None:
    for s in splits:
        assert np.intersect1d(s.train, s.test).size == 0
        assert not set(ds.run[s.train].tolist()) & set(ds.run[s.test].tolist()), s.name
        assert set(ds.run[s.test].tolist()) <= set(s.test_runs)
        for i in s.test_runs:  # a test run has all of its windows in test
            assert np.isin(ds.run_rows(i), s.test).all()


def _tested_once(ds: Dataset, splits: list[Split]) -> None:
    tested = sorted(i for s in splits for i in s.test_runs)
    assert tested == list(range(len(ds.runs)))


def test_implementations_come_from_the_manifest_or_the_family(gen_ds: Dataset) -> None:
    impl = {r.workload: r.implementation for r in gen_ds.runs}
    assert impl["xmrig-yield"] == "xmrig-6.16.0"
    assert impl["xmrig-no-yield"] == "xmrig"  # older manifest: derived from the family
    assert impl["randomx-1t"] == "minerlens-c"
    assert impl["web-a"] == ""
    assert gen_ds.implementations() == ["minerlens-c", "xmrig"]  # versions folded


def test_implementation_holdout_trains_without_any_xmrig_run(gen_ds: Dataset) -> None:
    splits = implementation_splits(gen_ds)
    assert [s.heldout for s in splits] == ["minerlens-c", "xmrig"]
    _check_no_run_on_both_sides(gen_ds, splits)
    _tested_once(gen_ds, splits)
    for s in splits:
        train_runs = {gen_ds.runs[i] for i in set(gen_ds.run[s.train].tolist())}
        test_runs = [gen_ds.runs[i] for i in s.test_runs]
        assert not any(r.implementation_group == s.heldout for r in train_runs), f"{s.heldout} run in training"
        assert {r.implementation_group for r in test_runs if r.label == "miner"} == {s.heldout}
        held = {r.workload for r in gen_ds.runs if r.implementation_group == s.heldout}
        assert held <= {r.workload for r in test_runs}, "every run of the implementation is tested"
        benign_test = {r.family for r in test_runs if r.label == "benign"}
        assert benign_test, "benign families are tested beside the implementation"
        assert not benign_test & {r.family for r in train_runs}, "the benign test families are unseen"
        assert set(gen_ds.y[s.train].tolist()) == {0, 1}
    xmrig = next(s for s in splits if s.heldout == "xmrig")
    assert {gen_ds.runs[i].workload for i in xmrig.test_runs if gen_ds.runs[i].label == "miner"} == {
        "xmrig-yield",
        "xmrig-no-yield",
        "xmrig-noise-90",
    }


def test_one_implementation_gives_no_split(dataset: Dataset) -> None:
    """The committed sample has only the lab's C miners: nothing to hold out."""
    assert dataset.implementations() == ["minerlens-c"]
    assert implementation_splits(dataset) == []


@pytest.mark.parametrize("folds", [0, 2, 3])
def test_lofo_holds_every_family_out_once(gen_ds: Dataset, dataset: Dataset, folds: int) -> None:
    for ds in (gen_ds, dataset):
        splits = lofo_splits(ds, folds)
        _check_no_run_on_both_sides(ds, splits)
        _tested_once(ds, splits)
        fam = ds.column("family")
        for s in splits:
            held = set(s.heldout.split(","))
            assert {ds.runs[i].family for i in s.test_runs} == held
            assert not held & set(fam[s.train].tolist())
        if folds == 0:
            assert [s.heldout for s in splits] == ds.families("benign") + ds.families("miner")
        else:
            assert len(splits) <= folds


def test_run_kfold_never_splits_a_run(gen_ds: Dataset, dataset: Dataset) -> None:
    for ds in (gen_ds, dataset):
        splits = run_kfold_splits(ds, k=3)
        _check_no_run_on_both_sides(ds, splits)
        _tested_once(ds, splits)


def test_capped_rows_keep_every_run_and_at_most_cap(gen_ds: Dataset) -> None:
    rows = np.arange(len(gen_ds), dtype=np.int64)
    capped = capped_rows(gen_ds, rows, 3)
    per_run = np.bincount(gen_ds.run[capped], minlength=len(gen_ds.runs))
    for i, r in enumerate(gen_ds.runs):
        assert per_run[i] == min(3, r.n_windows)
    assert capped_rows(gen_ds, rows, 0) is rows


def _with_process_windows(trace: Trace) -> Block:
    """Each pod window, plus the same slot as two process windows: the trace's own process (pid 100) and a
    ``nginx`` process (pid 7) -- what the feature library will emit once it cuts per-process windows."""
    windows = list(windows_from_trace(trace, SPEC.window))
    comm = str(trace.table.column("comm")[0].as_py())
    procs = [SimpleNamespace(pid=pid, comm=c, **_fields(w)) for w in windows for pid, c in ((100, comm), (7, "nginx"))]
    X = vectorize_many(windows, SPEC)
    allw: list[Any] = [*windows, *procs]
    X_all = np.concatenate([X, np.repeat(X, 2, axis=0)])
    return Block.of_windows(allw, X_all, np.zeros((len(allw), 0), np.int16))


def _fields(w: Any) -> dict[str, Any]:
    return {"count": w.count, "start_ns": w.start_ns, "end_ns": w.end_ns, "pod_uid": w.pod_uid}


def test_label_rule_for_process_windows(gen_dir: Path, gen_ds: Dataset) -> None:
    ds = build_dataset(gen_dir, SPEC, _with_process_windows, SPEC.dim, 0)
    assert ds.is_process.sum() == 2 * (~ds.is_process).sum()
    for i, run in enumerate(ds.runs):
        rows = ds.run_rows(i)
        pod, proc = rows[ds.pid[rows] == POD], rows[ds.pid[rows] != POD]
        assert (ds.y[pod] == run.y).all(), "pod windows take the run's label"
        if run.label == "benign":
            assert (ds.y[proc] == 0).all()
        elif run.miner_comms:  # xmrig-yield: facts["miner_comms"] == ["xmrig"]
            assert run.miner_comms == ("xmrig",)
            assert (ds.y[proc][ds.comm[proc] == "xmrig"] == 1).all()
            assert (ds.y[proc][ds.comm[proc] == "nginx"] == 0).all()
            assert ds.comm[proc].tolist().count("xmrig") > 0
        else:  # no miner_comms: the trace's label
            assert (ds.y[proc] == 1).all()
        # one alert stream for the pod, one per process
        assert len(set(ds.stream[pod].tolist())) == 1
        assert len(set(ds.stream[proc].tolist())) == 2
        assert not set(ds.stream[pod].tolist()) & set(ds.stream[proc].tolist())
    # today's feature library: pod windows only, every label is the run's
    assert not gen_ds.is_process.any()
    assert (gen_ds.y == gen_ds.run_y).all()


@pytest.fixture(scope="module")
def report(gen_ds: Dataset) -> dict[str, Any]:
    return evaluate(gen_ds, EvalConfig(models=("tree",), fpr=0.1, k_folds=2))


def test_every_run_is_scored_once_per_scheme(gen_ds: Dataset, report: dict[str, Any]) -> None:
    pooled = report["pooled"]["tree"]
    assert set(pooled) == {"lofo", "impl-out", "run-kfold", "leaky-random"}
    for scheme in ("lofo", "impl-out", "run-kfold"):
        assert sorted(r["run"] for r in pooled[scheme]["runs"]) == list(range(len(gen_ds.runs)))
        assert pooled[scheme]["window"]["n"] == len(gen_ds)
        for key in ("accuracy", "log_loss", "f1", "precision", "recall", "kappa", "roc_auc", "fpr"):
            assert key in pooled[scheme]["window"]
            assert key in pooled[scheme]["trace"]


def test_alerts_agree_with_the_alert_score_and_the_threshold(report: dict[str, Any]) -> None:
    for split in report["splits"]:
        for r in split.get("runs", []):
            assert r["alerted"] == (r["alert_score"] > split["threshold"]), (split["split"], r["run_id"])
            assert r["alerted"] == (r["alerts"] > 0)
            if r["alerted"] and r["label"] == "miner":
                assert r["latency_s"] is not None
                assert r["latency_s"] > 0


def test_alert_rate_and_latency(gen_ds: Dataset, report: dict[str, Any]) -> None:
    lofo = report["pooled"]["tree"]["lofo"]
    rate = lofo["alert_rate"]
    benign_s = sum(r.seconds for r in gen_ds.runs if r.label == "benign")
    assert rate["pod_hours"] == pytest.approx(benign_s / 3600)
    assert rate["alerts"] == sum(r["alerts"] for r in lofo["runs"] if r["label"] == "benign")
    lo, hi = rate["per_100_pod_hours_ci95"]
    assert lo <= rate["per_100_pod_hours"] <= hi
    if rate["alerts"] == 0:
        assert hi == pytest.approx(100 * 3.689 / rate["pod_hours"], rel=1e-3)  # Garwood upper bound of 0
    lat = lofo["alert_latency"]
    alerted = [r["latency_s"] for r in lofo["runs"] if r["label"] == "miner" and r["alerted"]]
    assert alerted, "the tree alerts on some miners of this lab under LOFO"
    assert lat["alerted_runs"] == len(alerted)
    assert lat["median_seconds"] == pytest.approx(float(np.median(alerted)))
    assert min(alerted) >= 3.0, "3 of 5 one-second windows: no alert before the end of the third window"


def test_per_variant_and_per_family_tables(report: dict[str, Any]) -> None:
    impl = report["pooled"]["tree"]["impl-out"]["implementations"]
    got = {(g["implementation"], g["variant"]) for g in impl}
    assert ("xmrig", "no-yield") in got
    assert ("xmrig", "noise 90%") in got
    assert ("xmrig-6.16.0", "yield") in got
    assert ("minerlens-c", "throttled 12%") in got
    fams = {f["family"]: f for f in report["pooled"]["tree"]["lofo"]["families"]}
    assert fams["hashing-jobs"]["lookalike"]
    assert fams["keepalive-clients"]["lookalike"]
    assert not fams["web"]["lookalike"]
    benign_order = [f["family"] for f in report["pooled"]["tree"]["lofo"]["families"] if f["label"] == "benign"]
    assert benign_order[:2] == ["hashing-jobs", "keepalive-clients"], "look-alikes come first"
    for f in fams.values():
        assert 0.0 <= f["max_score"] <= 1.0
        assert math.isfinite(f["pod_hours"])
    md = render_markdown(report)
    for needle in (
        "Miner implementations held out",
        "Benign families one by one",
        "Alerts per 100 benign pod-hours",
        "| xmrig | no-yield |",
        "| hashing-jobs | yes |",
        "random 70/30 (leaks)",
        "Time to alert, per miner run",
    ):
        assert needle in md, needle


def test_thresholds_never_see_the_test_windows(gen_ds: Dataset) -> None:
    """Replacing every test window's features changes the test scores, never the split's threshold."""
    cfg = EvalConfig(models=("tree",), fpr=0.1)
    split = implementation_splits(gen_ds)[1]
    before = fit_split(gen_ds, split, "tree", cfg)
    X = gen_ds.X.copy()
    X[split.test] = np.random.default_rng(0).random((split.test.size, X.shape[1])).astype(np.float32) * 1000
    after = fit_split(replace(gen_ds, X=X), split, "tree", cfg)
    assert after.threshold == before.threshold
    assert not np.array_equal(after.scores, before.scores)


def test_parallel_fits_give_the_same_report(gen_ds: Dataset, report: dict[str, Any]) -> None:
    """``jobs=2`` fits the splits in two worker processes: same thresholds, scores and alerts as in-process."""
    par = evaluate(gen_ds, EvalConfig(models=("tree",), fpr=0.1, k_folds=2, jobs=2))
    assert [(s["split"], s["threshold"]) for s in par["splits"]] == [
        (s["split"], s["threshold"]) for s in report["splits"]
    ]
    for scheme, res in report["pooled"]["tree"].items():
        same = json.dumps(par["pooled"]["tree"][scheme]["window"], sort_keys=True)  # NaN-aware
        assert same == json.dumps(res["window"], sort_keys=True)
        assert [r["alerts"] for r in par["pooled"]["tree"][scheme].get("runs", [])] == [
            r["alerts"] for r in res.get("runs", [])
        ]
