"""Honest evaluation: every detector on splits that hold whole families, whole miner implementations or whole
runs out, plus the leaky split for contrast.

For each split the detector is fitted on the training windows (feature vectors or, for the sequence
models, ``Dataset.sequences``; at most ``train_cap`` windows per run and window kind), its threshold is
set on the **training** part only (``calibration``: out-of-fold scores of the training benign windows),
and every test window is scored. Every run of a split's test set belongs to a held-out group (its
family, its implementation or its fold), so pooling the test windows of a scheme's splits scores every
window exactly once by a model that never saw its family (resp. implementation, run).

Trace level: the scorer's alert policy (``alert_replay``) is replayed over each test run's window scores
in time order: alerted runs, alerts opened, alerts per 100 benign pod-hours, time to alert.
``jobs > 1`` fits splits in parallel worker processes (joblib); the results do not depend on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from minerlens_training.alert_replay import ScorerAlertPolicy
from minerlens_training.breakdowns import LOOKALIKES, breakdowns
from minerlens_training.calibration import Calibration, calibrate, calibration_groups
from minerlens_training.context import bare_rows, training_rows
from minerlens_training.datasets import MINER, Dataset
from minerlens_training.detectors import detector_class, make_detector
from minerlens_training.metrics import binary_metrics, roc_points
from minerlens_training.splits import (
    SCHEME_TITLES,
    Split,
    capped_rows,
    implementation_splits,
    leaky_random_split,
    lofo_splits,
    run_kfold_splits,
)
from minerlens_training.trace_level import alert_latency, alert_rate, run_record, trace_block

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]
Progress = Callable[[str], None]
"""called after each fitted split with a short description (the CLI advances its progress display)"""
SCHEMES = ("lofo", "impl-out", "run-kfold")


@dataclass(frozen=True)
class EvalConfig:
    models: tuple[str, ...] = ("tree", "xgboost", "mlp")
    fpr: float = 0.01
    policy: ScorerAlertPolicy = field(default_factory=ScorerAlertPolicy)
    k_folds: int = 5
    seed: int = 0
    leaky: bool = True
    calibration: Calibration = "oof"
    oof_folds: int = 3
    """out-of-fold models per threshold (``calibrate``'s ``folds``): each split costs 1 + ``oof_folds`` fits"""
    lofo_folds: int = 0
    """0: one split per family; K: families dealt into K held-out groups (``splits.lofo_splits``)"""
    context_dropout: bool = False
    """train on every window and on its twin without resource samples and fd kinds (``context``)"""
    quiet_twins: bool = False
    """train also on every window with resource samples as a twin without syscall identities (``context``)"""
    train_cap: int = 0
    """at most this many training windows per run and window kind (pod / process); 0: all"""
    jobs: int = 1
    lookalikes: tuple[str, ...] = LOOKALIKES
    schemes: tuple[str, ...] = SCHEMES
    gate_train: bool = True
    """with a decision gate (``policy.gate``): fit on the windows it leaves open (and every bare twin) only"""


@dataclass(frozen=True)
class Fitted:
    """What one (model, split) fit produced."""

    model: str
    scheme: str
    index: int
    result: dict[str, Any]
    scores: F64
    threshold: float


def fit_split(ds: Dataset, split: Split, model: str, cfg: EvalConfig, index: int = 0) -> Fitted:
    """Fit ``model`` on the split's training rows, set its threshold on them, score the test rows."""
    kind = detector_class(model).input_kind
    inputs = ds.inputs(kind)
    train = capped_rows(ds, split.train, cfg.train_cap)
    gate = cfg.policy.gate if kind != "sequence" else "none"
    dropout = cfg.context_dropout and kind != "sequence" and ds.X_bare is not None
    X_tr, y_tr, src, eligible = training_rows(
        ds, train, inputs, gate=gate, dropout=dropout, exclude_gated=cfg.gate_train, quiet=cfg.quiet_twins
    )
    t0 = time.perf_counter()
    det = make_detector(model, seed=cfg.seed).fit(X_tr, y_tr)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    groups = calibration_groups(ds, src, cfg.calibration)
    threshold = calibrate(det, X_tr, y_tr, groups, cfg.fpr, cfg.calibration, folds=cfg.oof_folds, eligible=eligible)
    calibrate_s = time.perf_counter() - t0
    scores = det.score(inputs[split.test]) if split.test.size else np.zeros(0)
    bare: dict[str, Any] = {}
    if kind != "sequence" and ds.X_bare is not None:
        test_bare = bare_rows(ds, split.test)
        if test_bare.size:
            s_bare = np.asarray(det.score(ds.X_bare[test_bare]), np.float64)
            pod = ~ds.is_process[test_bare]
            bare = {"window_bare": binary_metrics(ds.y[test_bare][pod], s_bare[pod], s_bare[pod] > threshold)}
    result: dict[str, Any] = {
        "split": split.name,
        "scheme": split.scheme,
        "heldout": split.heldout,
        "heldout_label": split.heldout_label,
        "counterpart": split.counterpart,
        "model": model,
        "threshold": threshold,
        "fit_seconds": round(fit_s, 2),
        "calibration_seconds": round(calibrate_s, 2),
        "train_windows": int(train.size),
        "train_windows_uncapped": int(split.train.size),
        "test_windows": int(split.test.size),
        "context_dropout": dropout,
        "quiet_twins": cfg.quiet_twins and kind != "sequence",
        **bare,
    }
    return Fitted(model, split.scheme, index, result, np.asarray(scores, np.float64), float(threshold))


def _window_blocks(ds: Dataset, rows: I64, scores: F64, preds: Bool) -> dict[str, Any]:
    """Window metrics on pod windows (``window``) and, when there are any, on process windows (``process_window``)."""
    proc = ds.is_process[rows]
    out: dict[str, Any] = {"window": binary_metrics(ds.y[rows][~proc], scores[~proc], preds[~proc])}
    if proc.any():
        out["process_window"] = binary_metrics(ds.y[rows][proc], scores[proc], preds[proc])
    return out


def _records(ds: Dataset, split: Split, scores: F64, threshold: float, cfg: EvalConfig) -> list[dict[str, Any]]:
    pos = {int(r): i for i, r in enumerate(split.test)}
    out = []
    for ri in split.test_runs:
        idx = np.array([pos[int(j)] for j in ds.run_rows(ri)], np.int64)
        out.append(run_record(ds, ri, scores[idx] if idx.size else np.zeros(0), threshold, cfg.policy))
    return out


def complete_split(ds: Dataset, split: Split, fitted: Fitted, cfg: EvalConfig) -> tuple[dict[str, Any], Bool]:
    """A fitted split's result with window metrics and (for run-based splits) its run records."""
    preds = np.asarray(fitted.scores > fitted.threshold, np.bool_) & ~ds.gated(cfg.policy.gate)[split.test]
    result = dict(fitted.result) | _window_blocks(ds, split.test, fitted.scores, preds)
    if split.test_runs:
        records = _records(ds, split, fitted.scores, fitted.threshold, cfg)
        result["runs"] = records
        result["trace"] = trace_block(records)
    return result, preds


def evaluate_split(ds: Dataset, split: Split, model: str, cfg: EvalConfig) -> tuple[dict[str, Any], F64, Bool]:
    """Fit, calibrate and score one split (in this process)."""
    fitted = fit_split(ds, split, model, cfg)
    result, preds = complete_split(ds, split, fitted, cfg)
    return result, fitted.scores, preds


@dataclass
class _Pool:
    """Scores of each window / run from its own held-out split."""

    rows: list[I64] = field(default_factory=list)
    scores: list[F64] = field(default_factory=list)
    preds: list[Bool] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)


def _pooled(ds: Dataset, pool: _Pool, cfg: EvalConfig) -> dict[str, Any]:
    if not pool.rows:
        return {}
    rows = np.concatenate(pool.rows)
    scores, preds = np.concatenate(pool.scores), np.concatenate(pool.preds)
    pod = ~ds.is_process[rows]
    out = _window_blocks(ds, rows, scores, preds)
    out["roc"] = roc_points(ds.y[rows][pod], scores[pod])
    if pool.runs:
        out |= {
            "trace": trace_block(pool.runs),
            "alert_rate": alert_rate(pool.runs),
            "alert_latency": alert_latency(pool.runs, ds.spec.window.seconds),
            "runs": pool.runs,
        }
        out |= breakdowns(ds, rows, scores, preds, pool.runs, cfg.lookalikes)
    return out


def dataset_summary(ds: Dataset) -> dict[str, Any]:
    benign_s = sum(r.seconds for r in ds.runs if r.label != MINER)
    return {
        "source": ds.source,
        "manifest_sha256": ds.manifest_sha256,
        "feature_digest": ds.spec.digest,
        "window_policy": ds.spec.window.model_dump(mode="json"),
        "order_only": ds.order_only,
        "windows": len(ds),
        "miner_windows": int(ds.y.sum()),
        "pod_windows": int((~ds.is_process).sum()),
        "process_windows": int(ds.is_process.sum()),
        "implementations": ds.implementations(),
        "benign_pod_hours": benign_s / 3600.0,
        "runs": [
            {
                "run_id": r.run_id,
                "family": r.family,
                "label": r.label,
                "variant": r.variant,
                "implementation": r.implementation,
                "syscalls": r.syscalls,
                "seconds": r.seconds,
                "windows": r.n_windows,
            }
            for r in ds.runs
        ],
    }


def schemes_of(ds: Dataset, cfg: EvalConfig) -> dict[str, list[Split]]:
    builders: dict[str, Callable[[], list[Split]]] = {
        "lofo": lambda: lofo_splits(ds, cfg.lofo_folds),
        "impl-out": lambda: implementation_splits(ds),
        "run-kfold": lambda: run_kfold_splits(ds, cfg.k_folds, cfg.seed),
    }
    schemes = {s: builders[s]() for s in cfg.schemes if s in builders}
    if cfg.leaky:
        schemes["leaky-random"] = [leaky_random_split(ds, seed=cfg.seed)]
    return schemes


def count_fits(ds: Dataset, cfg: EvalConfig) -> int:
    """How many times ``evaluate`` calls ``progress`` (one per model and split)."""
    return len(cfg.models) * sum(len(s) for s in schemes_of(ds, cfg).values())


def _fits(ds: Dataset, cfg: EvalConfig, schemes: dict[str, list[Split]]) -> Iterator[Fitted]:
    tasks = [(model, split, i) for model in cfg.models for splits in schemes.values() for i, split in enumerate(splits)]
    if cfg.jobs <= 1:
        for model, split, i in tasks:
            yield fit_split(ds, split, model, cfg, i)
        return
    from joblib import Parallel, delayed

    run = Parallel(n_jobs=cfg.jobs, backend="loky", return_as="generator_unordered")
    yield from run(delayed(fit_split)(ds, split, model, cfg, i) for model, split, i in tasks)


def evaluate(ds: Dataset, cfg: EvalConfig | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Every model on every split; returns the JSON-ready report (see ``report.render_markdown``)."""
    cfg = cfg or EvalConfig()
    say = progress or (lambda _msg: None)
    for model in cfg.models:
        detector_class(model)  # unknown names fail before any fit
    schemes = schemes_of(ds, cfg)
    fitted: dict[tuple[str, str, int], Fitted] = {}
    for f in _fits(ds, cfg, schemes):
        fitted[(f.model, f.scheme, f.index)] = f
        split = schemes[f.scheme][f.index]
        secs = f.result["fit_seconds"] + f.result["calibration_seconds"]
        say(f"{f.model} {split.name} ({secs:.1f} s, {f.result['train_windows']} training windows)")
    report: dict[str, Any] = {
        "config": {
            "models": list(cfg.models),
            "context_dropout": cfg.context_dropout,
            "quiet_twins": cfg.quiet_twins,
            "kind_of_score": {m: detector_class(m).kind_of_score for m in cfg.models},
            "fpr": cfg.fpr,
            "alert_policy": {
                "k": cfg.policy.k,
                "n": cfg.policy.n,
                "resolve_m": cfg.policy.resolve_m,
                "resolve_factor": cfg.policy.resolve_factor,
                "quiet_timeout_s": cfg.policy.quiet_timeout_s,
                "min_syscalls": cfg.policy.min_syscalls,
                "gate": cfg.policy.gate,
                "text": str(cfg.policy),
            },
            "k_folds": cfg.k_folds,
            "lofo_folds": cfg.lofo_folds,
            "train_cap": cfg.train_cap,
            "seed": cfg.seed,
            "calibration": cfg.calibration,
            "oof_folds": cfg.oof_folds,
            "gate_train": cfg.gate_train,
            "lookalikes": list(cfg.lookalikes),
            "schemes": {s: SCHEME_TITLES[s] for s in schemes},
            "unavailable_schemes": {s: _why_empty(ds, s) for s, splits in schemes.items() if not splits},
        },
        "dataset": dataset_summary(ds),
        "splits": [],
        "pooled": {},
    }
    for model in cfg.models:
        for scheme, splits in schemes.items():
            pool = _Pool()
            for i, split in enumerate(splits):
                result, preds = complete_split(ds, split, fitted[(model, scheme, i)], cfg)
                report["splits"].append(result)
                pool.rows.append(split.test)
                pool.scores.append(fitted[(model, scheme, i)].scores)
                pool.preds.append(preds)
                pool.runs.extend(result.get("runs", []))
            pooled = _pooled(ds, pool, cfg)
            bare = [fitted[(model, scheme, i)].result.get("window_bare") for i in range(len(splits))]
            if any(b for b in bare):
                pooled["window_bare"] = pooled_counts([b for b in bare if b])
            report["pooled"].setdefault(model, {})[scheme] = pooled
    return report


def pooled_counts(blocks: list[dict[str, Any]]) -> dict[str, float]:
    """Recall and FPR over several splits' window blocks, weighted by their positives and negatives."""
    pos = sum(b["positives"] for b in blocks)
    neg = sum(b["negatives"] for b in blocks)
    hits = sum(b["recall"] * b["positives"] for b in blocks if b["positives"])
    false = sum(b["fpr"] * b["negatives"] for b in blocks if b["negatives"])
    return {
        "positives": pos,
        "negatives": neg,
        "recall": hits / pos if pos else float("nan"),
        "fpr": false / neg if neg else float("nan"),
    }


def _why_empty(ds: Dataset, scheme: str) -> str:
    if scheme == "impl-out":
        impls = ds.implementations()
        return f"needs two miner implementations, the dataset has {len(impls)} ({', '.join(impls) or 'none'})"
    if scheme == "run-kfold":
        return "needs at least two runs of each label"
    return "needs families of both labels"


def window_comparison_row(ds: Dataset, report: dict[str, Any], model: str) -> dict[str, Any]:
    """One line of the window-length comparison: ``model``'s pooled LOFO and run-k-fold results on ``ds``."""
    pooled = report["pooled"][model]
    row: dict[str, Any] = {
        "model": model,
        "seconds": ds.spec.window.seconds,
        "window_policy": ds.spec.window.model_dump(mode="json"),
        "windows": len(ds),
        "miner_windows": int(ds.y.sum()),
    }
    for scheme in ("lofo", "run-kfold"):
        if pooled.get(scheme):
            row[scheme] = {k: pooled[scheme][k] for k in ("window", "trace", "alert_latency", "alert_rate", "noise")}
            row[scheme] |= failures(pooled[scheme]["runs"])
    return row


def failures(runs: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The runs a pooled result gets wrong at trace level: miners never alerted, benign runs alerted."""
    return {
        "missed_miner_runs": [r["run_id"] for r in runs if r["label"] == MINER and not r["alerted"]],
        "alerted_benign_runs": [r["run_id"] for r in runs if r["label"] != MINER and r["alerted"]],
    }
