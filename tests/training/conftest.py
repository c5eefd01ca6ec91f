"""Shared fixtures: a small labelled dataset (the committed sample when present, else synthetic) and one
fitted detector per model (feature and sequence models alike), trained on all runs but one per family
(the held-out runs are the test set)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from minerlens_core.datasets.manifest import load_manifest
from minerlens_training.datasets import Dataset, load_dataset
from minerlens_training.detectors import DETECTORS, BaseDetector, make_detector

from tests.training.synthetic import write_synthetic_dataset

SAMPLE = (
    Path(__file__).resolve().parents[2] / "data" / "sample-v1"
)  # the first lab (one miner implementation): what these tests were written on
FPR = 0.1


def _usable(directory: Path) -> bool:
    try:
        runs = [r for r in load_manifest(directory).runs if r.status == "ok"]
    except (OSError, ValueError):
        return False
    return {r.label for r in runs} >= {"miner", "benign"}


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if SAMPLE.is_dir() and _usable(SAMPLE):
        return SAMPLE
    return write_synthetic_dataset(tmp_path_factory.mktemp("synthetic-lab"))


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic dataset (2 benign + 2 miner families, timestamps): for end-to-end runs that must be fast."""
    return write_synthetic_dataset(tmp_path_factory.mktemp("synthetic-small"))


@pytest.fixture(scope="session")
def dataset(dataset_dir: Path) -> Dataset:
    ds = load_dataset(dataset_dir)
    assert set(ds.y.tolist()) == {0, 1}, "the test dataset needs both labels"
    return ds


@dataclass(frozen=True)
class Held:
    train: npt.NDArray[np.int64]
    test: npt.NDArray[np.int64]


@pytest.fixture(scope="session")
def held(dataset: Dataset) -> Held:
    """The last run (by id) of every family that has >= 2 runs with windows is held out."""
    by_family: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(dataset.runs):
        if r.n_windows:
            by_family[r.family].append(i)
    out = {max(ix, key=lambda i: dataset.runs[i].run_id) for ix in by_family.values() if len(ix) >= 2}
    test = np.flatnonzero(np.isin(dataset.run, sorted(out)))
    train = np.setdiff1d(np.arange(len(dataset)), test)
    assert set(dataset.y[test].tolist()) == {0, 1}
    return Held(train.astype(np.int64), test.astype(np.int64))


FitModel = Callable[[str], BaseDetector]


@pytest.fixture(scope="session")
def fit_model(dataset: Dataset, held: Held) -> FitModel:
    """``fit_model(name)``: that detector fitted on the training runs, threshold at ``FPR`` (cached per session)."""
    cache: dict[str, BaseDetector] = {}

    def get(name: str) -> BaseDetector:
        if name not in cache:
            det = make_detector(name, seed=0)
            inputs = dataset.inputs(det.input_kind)
            X, y = inputs[held.train], dataset.y[held.train]
            det.fit(X, y)
            det.infer_threshold(X[y == 0], FPR)
            cache[name] = det
        return cache[name]

    return get


@pytest.fixture(params=sorted(DETECTORS))
def fitted(request: pytest.FixtureRequest, fit_model: FitModel) -> BaseDetector:
    return fit_model(str(request.param))
