"""Train/test splits that never put windows of one run (or of one held-out family / implementation) on both sides.

Every split is defined on **runs** (``test_runs``; runs without windows still count at trace level) and
the windows follow their run, so no run is ever on both sides.

* ``lofo_splits`` (leave-one-family-out): one split per family, benign and miner alike, sorted by label
  then name; the test set is that family's runs, training is every other run (all other families of
  both labels). With ``folds=K`` the families of each label are dealt round-robin (sorted by name) into
  K groups and split ``i`` holds out benign group ``i`` and miner group ``i`` together: every family is
  still held out exactly once, by a model that saw fewer families (cheaper: K splits instead of one per
  family; stricter, not looser).
* ``implementation_splits`` (leave-one-miner-implementation-out): for each miner implementation
  (versions folded: ``xmrig-6.16.0`` -> ``xmrig``) the test set is every miner run of it **plus one
  group of benign families**: the benign families, sorted by name, are dealt round-robin into as many
  groups as there are implementations, and split ``j`` holds out group ``j``. So the model that scores
  XMRig has never seen an XMRig run nor the benign families it is tested on; every run is tested
  exactly once. Empty when the dataset has fewer than two implementations.
* ``run_kfold_splits``: ``StratifiedGroupKFold`` over runs (groups = run id), shuffled with a fixed seed.
* ``leaky_random_split``: the paper's setup, a stratified random 70/30 split over **windows**; windows of
  one run land on both sides. Only for contrast: it measures memorisation of runs, not detection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from minerlens_training.datasets import MINER, Dataset

I64 = npt.NDArray[np.int64]
Scheme = Literal["lofo", "impl-out", "run-kfold", "leaky-random"]
SCHEME_TITLES: dict[str, str] = {
    "lofo": "leave-one-family-out",
    "impl-out": "leave-one-miner-implementation-out",
    "run-kfold": "runs held out (k-fold)",
    "leaky-random": "paper-style random 70/30 split of windows (leaks)",
}


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
    """the families (LOFO) or the implementation (impl-out) this split holds out, comma-separated"""
    heldout_label: str = ""
    counterpart: str = ""
    """impl-out: the benign families held out with the implementation; LOFO with folds: the benign group"""


def _rows_of_runs(ds: Dataset, runs: set[int]) -> I64:
    return np.flatnonzero(np.isin(ds.run, np.fromiter(runs, np.int64, len(runs))))


def _split_by_runs(ds: Dataset, scheme: Scheme, name: str, test_runs: set[int], **kw: str) -> Split:
    test = _rows_of_runs(ds, test_runs)
    train = np.setdiff1d(np.arange(len(ds), dtype=np.int64), test)
    return Split(scheme, name, train.astype(np.int64), test.astype(np.int64), tuple(sorted(test_runs)), **kw)


def _deal(items: list[str], k: int) -> list[list[str]]:
    """``items`` (sorted) dealt round-robin into ``k`` groups."""
    return [items[i::k] for i in range(k)]


def lofo_splits(ds: Dataset, folds: int = 0) -> list[Split]:
    """One split per family (``folds=0``), or ``folds`` splits each holding out a group of families per label."""
    benign, miners = ds.families("benign"), ds.families(MINER)
    out: list[Split] = []
    if folds <= 0:
        for fam, label in [(b, "benign") for b in benign] + [(m, MINER) for m in miners]:
            test_runs = {i for i, r in enumerate(ds.runs) if r.family == fam}
            out.append(_split_by_runs(ds, "lofo", f"lofo:{fam}", test_runs, heldout=fam, heldout_label=label))
        return out
    k = max(1, min(folds, max(len(benign), len(miners))))
    b_groups, m_groups = _deal(benign, k), _deal(miners, k)
    for i in range(k):
        fams = set(b_groups[i]) | set(m_groups[i])
        if not fams:
            continue
        test_runs = {j for j, r in enumerate(ds.runs) if r.family in fams}
        out.append(
            _split_by_runs(
                ds,
                "lofo",
                f"lofo-fold-{i + 1}",
                test_runs,
                heldout=",".join(sorted(fams)),
                heldout_label="both" if b_groups[i] and m_groups[i] else ("benign" if b_groups[i] else MINER),
                counterpart=",".join(b_groups[i]),
            )
        )
    return out


def implementation_splits(ds: Dataset) -> list[Split]:
    """Leave one miner implementation out, with a group of benign families held out beside it (module docstring)."""
    impls = ds.implementations()
    if len(impls) < 2:
        return []
    groups = _deal(ds.families("benign"), len(impls))
    out = []
    for impl, fams in zip(impls, groups, strict=True):
        test_runs = {
            i
            for i, r in enumerate(ds.runs)
            if (r.label == MINER and r.implementation_group == impl) or (r.label != MINER and r.family in fams)
        }
        out.append(
            _split_by_runs(
                ds,
                "impl-out",
                f"impl-out:{impl}",
                test_runs,
                heldout=impl,
                heldout_label=MINER,
                counterpart=",".join(fams),
            )
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


def capped_rows(ds: Dataset, rows: I64, cap: int) -> I64:
    """At most ``cap`` rows per (run, pod/process kind) of ``rows``, evenly spaced in each group's order
    (``cap <= 0``: all). Used for *training* rows only; every test window is scored."""
    if cap <= 0 or rows.size == 0:
        return rows
    key = ds.run[rows] * 2 + ds.is_process[rows].astype(np.int64)
    order = np.argsort(key, kind="stable")
    sorted_rows, sorted_key = rows[order], key[order]
    bounds = np.flatnonzero(np.diff(sorted_key)) + 1
    keep: list[I64] = []
    for group in np.split(sorted_rows, bounds):
        if group.size <= cap:
            keep.append(group)
        else:
            keep.append(group[np.unique(np.linspace(0, group.size - 1, cap).round().astype(np.int64))])
    return np.sort(np.concatenate(keep)).astype(np.int64)
