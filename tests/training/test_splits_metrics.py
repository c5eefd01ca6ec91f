"""Splits never leak runs or held-out families; metrics and the alert policy compute what they claim."""

from __future__ import annotations

import numpy as np
import pytest
from minerlens_training.datasets import Dataset
from minerlens_training.metrics import AlertPolicy, binary_metrics, trace_metrics
from minerlens_training.splits import leaky_random_split, lofo_splits, run_kfold_splits


def test_lofo_holds_out_one_family_per_split(dataset: Dataset) -> None:
    splits = lofo_splits(dataset)
    fam = dataset.column("family")
    benign, miners = dataset.families("benign"), dataset.families("miner")
    assert [s.heldout for s in splits] == benign + miners
    for s in splits:
        assert set(fam[s.test].tolist()) <= {s.heldout}
        assert s.heldout not in set(fam[s.train].tolist())
        assert np.intersect1d(s.train, s.test).size == 0
        assert {dataset.runs[i].family for i in s.test_runs} == {s.heldout}
        assert set(dataset.y[s.train].tolist()) == {0, 1}, "training keeps both labels"
    again = lofo_splits(dataset)
    assert [(s.name, s.test.tolist()) for s in again] == [(s.name, s.test.tolist()) for s in splits]


def test_run_kfold_tests_every_run_exactly_once(dataset: Dataset) -> None:
    splits = run_kfold_splits(dataset, k=2)
    tested = [i for s in splits for i in s.test_runs]
    assert sorted(tested) == list(range(len(dataset.runs)))
    for s in splits:
        assert not set(dataset.run[s.train].tolist()) & set(dataset.run[s.test].tolist())
        assert np.union1d(s.train, s.test).size == len(dataset)


def test_leaky_split_mixes_windows_of_one_run(dataset: Dataset) -> None:
    s = leaky_random_split(dataset)
    assert abs(s.test.size / len(dataset) - 0.3) < 0.05
    assert set(dataset.run[s.train].tolist()) & set(dataset.run[s.test].tolist())


def test_quiet_runs_are_kept_without_windows(dataset: Dataset) -> None:
    assert len(dataset.runs) == len({r.run_id for r in dataset.runs})
    assert sum(r.n_windows for r in dataset.runs) == len(dataset)
    assert dataset.X.dtype == np.float32
    assert dataset.X.shape[1] == dataset.spec.dim
    for i, r in enumerate(dataset.runs):
        assert np.all(dataset.run[r.start : r.start + r.n_windows] == i)
        assert np.all(dataset.y[r.start : r.start + r.n_windows] == r.y)


def test_binary_metrics() -> None:
    y = np.array([0, 0, 0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.4])
    m = binary_metrics(y, s, s > 0.5)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(0.5)
    assert m["fpr"] == pytest.approx(0.25)
    assert m["roc_auc"] == pytest.approx(6 / 8)
    assert np.isfinite(m["log_loss"])
    assert np.isfinite(m["kappa"])
    one = binary_metrics(np.zeros(3, np.int64), np.zeros(3), np.zeros(3, np.bool_))
    assert np.isnan(one["roc_auc"])
    assert np.isnan(one["recall"])
    assert one["fpr"] == 0.0


def test_alert_policy() -> None:
    p = AlertPolicy(3, 5)
    assert not p.alerts(np.array([1, 1], bool))
    assert not p.alerts(np.array([1, 0, 0, 0, 1, 0, 0, 0, 1], bool))
    assert p.alerts(np.array([1, 0, 1, 0, 1], bool))
    assert p.first_alert(np.array([0, 1, 1, 0, 0, 1, 1], bool)) == 5
    assert p.first_alert(np.array([], bool)) is None
    t = trace_metrics(np.array([1, 1, 0]), np.array([True, False, False]), np.array([False, True, False]))
    assert t["recall"] == 0.5
    assert t["fpr"] == 0.0
    assert t["miner_runs_too_short"] == 1
