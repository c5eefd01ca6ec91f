"""Train/test splits that never put windows of one run (or one held-out family) on both sides.

* ``lofo_splits`` (leave-one-family-out): for each benign family ``b`` (sorted by name, index ``i``)
  the test set is ``b`` plus the miner family ``miner_families[i % M]``; for each miner family ``m``
  (index ``j``) it is ``m`` plus the benign family ``benign_families[j % B]``. Training uses every
  other family. So each split holds out exactly one benign and one miner family, both classes are in
  test, and the pairing is fixed by sorted names (deterministic, no randomness).
* ``run_kfold_splits``: ``StratifiedGroupKFold`` over runs (groups = run id), shuffled with a fixed seed.
* ``leaky_random_split``: the paper's setup, a stratified random 70/30 split over **windows**; windows of
  one run land on both sides. Only for contrast: it measures memorisation of runs, not detection.

Splits are defined on runs (``test_runs``) as well as windows, so runs without windows still count at
trace level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from minerlens_training.datasets import MINER, Dataset

I64 = npt.NDArray[np.int64]
Scheme = Literal["lofo", "run-kfold", "leaky-random"]


@dataclass(frozen=True)
class Split:
    scheme: Scheme
    name: str
    train: I64
    """window rows"""
    test: I64
    test_runs: tuple[int, ...]
    """indices into ``Dataset.runs`` whose every window is in ``test`` (empty for the leaky split)"""
    heldout: str = ""
    """LOFO: the family this split is about"""
    heldout_label: str = ""
    counterpart: str = ""
    """LOFO: the family of the other label held out with it"""


def _rows_of_runs(ds: Dataset, runs: set[int]) -> I64:
    return np.flatnonzero(np.isin(ds.run, np.fromiter(runs, np.int64, len(runs))))


def _split_by_runs(ds: Dataset, scheme: Scheme, name: str, test_runs: set[int], **kw: str) -> Split:
    test = _rows_of_runs(ds, test_runs)
    train = np.setdiff1d(np.arange(len(ds), dtype=np.int64), test)
    return Split(scheme, name, train.astype(np.int64), test.astype(np.int64), tuple(sorted(test_runs)), **kw)


def lofo_splits(ds: Dataset) -> list[Split]:
    benign, miners = ds.families("benign"), ds.families(MINER)
    if not benign or not miners:
        return []
    out: list[Split] = []
    pairs = [(b, "benign", miners[i % len(miners)]) for i, b in enumerate(benign)]
    pairs += [(m, MINER, benign[j % len(benign)]) for j, m in enumerate(miners)]
    for fam, label, other in pairs:
        test_runs = {i for i, r in enumerate(ds.runs) if r.family in (fam, other)}
        out.append(
            _split_by_runs(ds, "lofo", f"lofo:{fam}", test_runs, heldout=fam, heldout_label=label, counterpart=other)
        )
    return out


def run_kfold_splits(ds: Dataset, k: int = 5, seed: int = 0) -> list[Split]:
    """Group k-fold over runs, stratified by label at run level (every run is tested exactly once)."""
    run_ids = np.arange(len(ds.runs))
    y_runs = np.array([r.y for r in ds.runs])
    k = min(k, int(np.bincount(y_runs, minlength=2).min()))
    if k < 2:
        return []
    folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    out = []
    for f, (_, test) in enumerate(folds.split(run_ids, y_runs, groups=run_ids)):
        out.append(_split_by_runs(ds, "run-kfold", f"run-fold-{f + 1}", {int(i) for i in test}))
    return out


def leaky_random_split(ds: Dataset, test_size: float = 0.3, seed: int = 0) -> Split:
    rows = np.arange(len(ds), dtype=np.int64)
    train, test = train_test_split(rows, test_size=test_size, random_state=seed, stratify=ds.y)
    return Split("leaky-random", "leaky-random-70/30", np.sort(train), np.sort(test), ())
