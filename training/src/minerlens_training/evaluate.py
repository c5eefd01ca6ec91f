"""Honest evaluation: every detector on leave-one-family-out and group-by-run splits, plus the leaky split.

For each split the detector is fitted on the training windows (feature vectors or, for the sequence
models, ``Dataset.sequences``), its threshold is inferred from the **training** benign windows for the
target FPR (``calibration``), and the test windows are scored. Results are kept per
split and pooled per scheme over each window's "own" split (LOFO: the split that held out the window's
family; run k-fold: the fold that held out its run), so every window is scored exactly once by a model
that never saw its family (resp. run).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from minerlens_training.calibration import Calibration, calibrate
from minerlens_training.datasets import MINER, Dataset
from minerlens_training.detectors import detector_class, make_detector
from minerlens_training.metrics import AlertPolicy, binary_metrics, roc_points, trace_metrics
from minerlens_training.splits import Split, leaky_random_split, lofo_splits, run_kfold_splits

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Progress = Callable[[str], None]
"""called after each fitted split with a short description (the CLI advances its progress bar)"""


@dataclass(frozen=True)
class EvalConfig:
    models: tuple[str, ...] = ("tree", "xgboost", "mlp")
    fpr: float = 0.01
    policy: AlertPolicy = field(default_factory=AlertPolicy)
    k_folds: int = 5
    seed: int = 0
    leaky: bool = True
    calibration: Calibration = "oof"


@dataclass
class _Pool:
    """Scores of each window / run from its own held-out split."""

    rows: list[I64] = field(default_factory=list)
    scores: list[F64] = field(default_factory=list)
    preds: list[npt.NDArray[np.bool_]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)


def _run_records(
    ds: Dataset, split: Split, scores: F64, pred: npt.NDArray[np.bool_], policy: AlertPolicy
) -> list[dict[str, Any]]:
    pos = {int(r): i for i, r in enumerate(split.test)}
    out = []
    for ri in split.test_runs:
        run = ds.runs[ri]
        idx = np.array([pos[j] for j in range(run.start, run.start + run.n_windows)], dtype=np.int64)
        flags = pred[idx] if idx.size else np.zeros(0, np.bool_)
        first = policy.first_alert(flags)
        out.append(
            {
                "run": ri,
                "run_id": run.run_id,
                "workload": run.workload,
                "family": run.family,
                "label": run.label,
                "variant": run.variant,
                "noise": run.noise,
                "throttled": run.throttled,
                "syscalls": run.syscalls,
                "windows": run.n_windows,
                "flagged": int(flags.sum()),
                "alerted": first is not None,
                "first_alert_window": first,
                "too_short": run.n_windows < policy.k,
                "mean_score": float(scores[idx].mean()) if idx.size else None,
            }
        )
    return out


def _trace_block(records: list[dict[str, Any]]) -> dict[str, float]:
    y = np.array([int(r["label"] == MINER) for r in records], np.int64)
    return trace_metrics(
        y, np.array([r["alerted"] for r in records], np.bool_), np.array([r["too_short"] for r in records], np.bool_)
    )


def evaluate_split(
    ds: Dataset, split: Split, model: str, cfg: EvalConfig
) -> tuple[dict[str, Any], F64, npt.NDArray[np.bool_]]:
    inputs = ds.inputs(detector_class(model).input_kind)
    X_tr, y_tr = inputs[split.train], ds.y[split.train]
    X_te, y_te = inputs[split.test], ds.y[split.test]
    t0 = time.perf_counter()
    det = make_detector(model, seed=cfg.seed).fit(X_tr, y_tr)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    threshold = calibrate(det, X_tr, y_tr, ds.run[split.train], cfg.fpr, cfg.calibration)
    calibrate_s = time.perf_counter() - t0
    scores = det.score(X_te)
    pred = np.asarray(scores > threshold, np.bool_)
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
        "train_windows": int(split.train.size),
        "test_windows": int(split.test.size),
        "window": binary_metrics(y_te, scores, pred),
    }
    if split.test_runs:
        records = _run_records(ds, split, scores, pred, cfg.policy)
        result["runs"] = records
        result["trace"] = _trace_block(records)
    return result, scores, pred


def _own(ds: Dataset, split: Split) -> npt.NDArray[np.bool_]:
    """Which test windows belong to this split's "own" held-out group (LOFO: the held-out family)."""
    if split.scheme != "lofo":
        return np.ones(split.test.size, np.bool_)
    fam = ds.column("family")[split.test]
    return np.asarray(fam == split.heldout, np.bool_)


def _pooled(ds: Dataset, pool: _Pool) -> dict[str, Any]:
    if not pool.rows:
        return {}
    rows = np.concatenate(pool.rows)
    scores, preds = np.concatenate(pool.scores), np.concatenate(pool.preds)
    return {
        "window": binary_metrics(ds.y[rows], scores, preds),
        "roc": roc_points(ds.y[rows], scores),
        "trace": _trace_block(pool.runs),
        "alert_latency": alert_latency(pool.runs, ds.spec.window.seconds),
        "runs": pool.runs,
        "families": _family_table(ds, rows, preds, pool.runs),
        "noise": _group_recall(pool.runs, lambda r: None if r["noise"] is None else f"{r['noise']}%"),
        "throttle": _group_recall(
            pool.runs, lambda r: None if r["label"] != MINER else ("throttled" if r["throttled"] else "not throttled")
        ),
        "variants": _group_recall(pool.runs, lambda r: r["variant"] if r["label"] == MINER else None),
    }


def alert_latency(runs: list[dict[str, Any]], window_seconds: float | None) -> dict[str, Any]:
    """Windows (and seconds, for time windows) from a miner run's first window to its alert, over alerted runs.

    The alert fires at the end of window ``first_alert_window``, so its latency is ``first_alert_window + 1``
    windows; with time windows of ``s`` seconds that is at most ``(first + 1) * s`` seconds of mining.
    """
    first = [r["first_alert_window"] + 1 for r in runs if r["label"] == MINER and r["alerted"]]
    out: dict[str, Any] = {"alerted_runs": len(first), "median_windows": None, "p90_windows": None}
    if first:
        out["median_windows"] = float(np.median(first))
        out["p90_windows"] = float(np.percentile(first, 90))
    if window_seconds is not None:
        out["window_seconds"] = window_seconds
        for k in ("median", "p90"):
            v = out[f"{k}_windows"]
            out[f"{k}_seconds"] = None if v is None else v * window_seconds
    return out


def _family_table(
    ds: Dataset, rows: I64, preds: npt.NDArray[np.bool_], runs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    fam = ds.column("family")[rows]
    out = []
    for f in sorted({r["family"] for r in runs}):
        mask = fam == f
        fr = [r for r in runs if r["family"] == f]
        label = fr[0]["label"]
        out.append(
            {
                "family": f,
                "label": label,
                "runs": len(fr),
                "windows": int(mask.sum()),
                "flagged_share": float(preds[mask].mean()) if mask.any() else None,
                "runs_alerted": sum(r["alerted"] for r in fr),
                "runs_without_windows": sum(r["windows"] == 0 for r in fr),
            }
        )
    return out


def _group_recall(runs: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], str | None]) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        k = key(r)
        if k is not None:
            groups[k].append(r)
    out = []
    for k in sorted(groups, key=lambda s: (len(s), s)):
        g = groups[k]
        windows = sum(r["windows"] for r in g)
        out.append(
            {
                "group": k,
                "runs": len(g),
                "windows": windows,
                "window_recall": sum(r["flagged"] for r in g) / windows if windows else None,
                "trace_recall": sum(r["alerted"] for r in g) / len(g),
                "runs_without_windows": sum(r["windows"] == 0 for r in g),
            }
        )
    return out


def dataset_summary(ds: Dataset) -> dict[str, Any]:
    return {
        "source": ds.source,
        "manifest_sha256": ds.manifest_sha256,
        "feature_digest": ds.spec.digest,
        "window_policy": ds.spec.window.model_dump(mode="json"),
        "windows": len(ds),
        "miner_windows": int(ds.y.sum()),
        "runs": [
            {
                "run_id": r.run_id,
                "family": r.family,
                "label": r.label,
                "variant": r.variant,
                "syscalls": r.syscalls,
                "windows": r.n_windows,
            }
            for r in ds.runs
        ],
    }


def _schemes(ds: Dataset, cfg: EvalConfig) -> dict[str, list[Split]]:
    schemes: dict[str, list[Split]] = {
        "lofo": lofo_splits(ds),
        "run-kfold": run_kfold_splits(ds, cfg.k_folds, cfg.seed),
    }
    if cfg.leaky:
        schemes["leaky-random"] = [leaky_random_split(ds, seed=cfg.seed)]
    return schemes


def count_fits(ds: Dataset, cfg: EvalConfig) -> int:
    """How many times ``evaluate`` calls ``progress`` (one per model and split)."""
    return len(cfg.models) * sum(len(s) for s in _schemes(ds, cfg).values())


def evaluate(ds: Dataset, cfg: EvalConfig | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Every model on every split; returns the JSON-ready report (see ``report.render_markdown``)."""
    cfg = cfg or EvalConfig()
    say = progress or (lambda _msg: None)
    for model in cfg.models:
        detector_class(model)  # unknown names fail before any fit
    schemes = _schemes(ds, cfg)
    report: dict[str, Any] = {
        "config": {
            "models": list(cfg.models),
            "kind_of_score": {m: detector_class(m).kind_of_score for m in cfg.models},
            "fpr": cfg.fpr,
            "alert_policy": {"k": cfg.policy.k, "n": cfg.policy.n},
            "k_folds": cfg.k_folds,
            "seed": cfg.seed,
            "calibration": cfg.calibration,
        },
        "dataset": dataset_summary(ds),
        "splits": [],
        "pooled": {},
    }
    for model in cfg.models:
        for scheme, splits in schemes.items():
            pool = _Pool()
            for split in splits:
                result, scores, pred = evaluate_split(ds, split, model, cfg)
                say(f"{model} {split.name}")
                report["splits"].append(result)
                own = _own(ds, split)
                pool.rows.append(split.test[own])
                pool.scores.append(scores[own])
                pool.preds.append(pred[own])
                own_runs = [r for r in result.get("runs", []) if scheme != "lofo" or r["family"] == split.heldout]
                pool.runs.extend(own_runs)
            report["pooled"].setdefault(model, {})[scheme] = _pooled(ds, pool)
    return report


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
            row[scheme] = {k: pooled[scheme][k] for k in ("window", "trace", "alert_latency", "noise")}
            row[scheme] |= failures(pooled[scheme]["runs"])
    return row


def failures(runs: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The runs a pooled result gets wrong at trace level: miners never alerted, benign runs alerted."""
    return {
        "missed_miner_runs": [r["run_id"] for r in runs if r["label"] == MINER and not r["alerted"]],
        "alerted_benign_runs": [r["run_id"] for r in runs if r["label"] != MINER and r["alerted"]],
    }
