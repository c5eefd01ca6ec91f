"""How good are the explanations? Faithfulness, stability and cost of SHAP, LIME and LSTM-AE on a lab dataset.

* **Faithfulness (deletion / insertion curves)**, on windows the model flags (score > threshold): take
  the explanation's features that push toward miner, in its order. *Deletion* replaces the top k of
  them by the benign baseline (the benign median, imputed like the model's input) and tracks the score;
  *insertion* starts from the baseline and puts the window's own values of the top k back. For the LSTM
  autoencoder the "features" are syscall names: deletion masks every position of the top-k syscalls with
  padding, insertion starts from an all-padding sequence and reveals them. The area under each curve
  (k on [0, 1] over the step grid, trapezoids) summarises it: low deletion AUC and high insertion AUC
  mean the explanation found what drives the score. The same curves for random orders of the features
  that differ from the baseline give the chance level.
* **Stability**: explanations of two neighbouring windows of the same run and stream (window index i and
  i + 1) — Jaccard overlap of their top-5 / top-10 features and Spearman correlation of the signed
  contributions over the union of their top-10 (a feature missing from one list counts as 0).
* **Cost**: wall-clock ms per ``explain`` call (``Explanation.cost_ms``) and the one-off construction.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from minerlens_core.datasets.manifest import load_manifest
from minerlens_core.features import (
    VOCAB_SIZE,
    VOCABULARY,
    FeatureSpec,
    Window,
    vectorize_many,
    window_sequence,
    windows_from_trace,
)
from minerlens_core.models import ArtifactManifest, Background, VerifiedManifest
from minerlens_core.models.onnx_model import pad_sequences
from minerlens_core.schemas.explanations import Explanation
from minerlens_core.traces import read_trace

from minerlens_training.errors import DatasetError
from minerlens_training.explain.base import WindowExplainer
from minerlens_training.explain.loader import load_explainer
from minerlens_training.explain.tabular import TabularModel

F64 = npt.NDArray[np.float64]
Progress = Callable[[str], None]
PAD = VOCAB_SIZE


@dataclass(frozen=True)
class QualityConfig:
    windows: int = 40
    """flagged windows per model for faithfulness and cost"""
    pairs: int = 30
    """neighbouring-window pairs per model for stability (half from miner runs, half from benign runs)"""
    methods: tuple[str, ...] = ("shap", "lime")
    """methods applied to feature models (sequence autoencoders always get lstm-ae)"""
    seed: int = 0
    top: int = 20
    """contributions requested per explanation (the deletion/insertion order)"""
    steps: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20)
    random_orders: int = 3


# ---- the dataset, windowed per model ------------------------------------------------------------------


@dataclass(frozen=True)
class RunWindows:
    run_id: str
    label: str
    family: str
    windows: list[Window]
    inputs: npt.NDArray[Any]


def dataset_runs(directories: Sequence[Path], spec: FeatureSpec, manifest: ArtifactManifest) -> list[RunWindows]:
    """Every ok run of the datasets, windowed with ``spec`` and turned into the model's inputs."""
    out: list[RunWindows] = []
    for directory in directories:
        try:
            runs = load_manifest(Path(directory)).runs
        except (OSError, ValueError) as exc:
            msg = f"{directory}: not a lab dataset ({exc})"
            raise DatasetError(msg) from None
        for rec in runs:
            if rec.status != "ok" or not rec.file or rec.label not in ("miner", "benign"):
                continue
            windows = list(windows_from_trace(read_trace(Path(directory) / rec.file), spec.window))
            if manifest.input_kind == "sequence":
                L = int(manifest.sequence_length or 0)
                inputs: npt.NDArray[Any] = pad_sequences([window_sequence(w, spec.params, L) for w in windows], L)
            else:
                inputs = vectorize_many(windows, spec)
            out.append(RunWindows(f"{rec.workload}-r{rec.repeat}", rec.label, rec.family, windows, inputs))
    if not out:
        msg = "no ok miner/benign run in " + ", ".join(map(str, directories))
        raise DatasetError(msg)
    return out


# ---- measures -------------------------------------------------------------------------------------------


def curve_auc(scores: Sequence[float] | F64, steps: Sequence[int]) -> float:
    """Area under ``scores`` over ``steps`` rescaled to [0, 1] (trapezoids)."""
    x = np.asarray(steps, dtype=np.float64)
    y = np.asarray(scores, dtype=np.float64)
    if len(x) < 2 or x[-1] == x[0]:
        return float(y.mean()) if len(y) else math.nan
    x = (x - x[0]) / (x[-1] - x[0])
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def rank_correlation(a: dict[str, float], b: dict[str, float]) -> float | None:
    """Spearman correlation of two sparse attribution maps over the union of their keys (missing = 0)."""
    from scipy.stats import spearmanr

    keys = sorted(set(a) | set(b))
    if len(keys) < 3:
        return None
    va = [a.get(k, 0.0) for k in keys]
    vb = [b.get(k, 0.0) for k in keys]
    if len(set(va)) < 2 or len(set(vb)) < 2:
        return None
    rho = float(spearmanr(va, vb).statistic)
    return None if math.isnan(rho) else rho


class Perturbation:
    """Deletion/insertion inputs of one window for a model (feature vector or syscall sequence)."""

    def __init__(self, explainer: WindowExplainer, x: npt.NDArray[Any], baseline: npt.NDArray[Any] | None) -> None:
        self.explainer = explainer
        self.sequence = explainer.input_kind == "sequence"
        if self.sequence:
            self.x = np.asarray(x, dtype=np.int64)
            self.base = np.full_like(self.x, PAD)
        else:
            model = getattr(explainer, "model", None)
            if not isinstance(model, TabularModel):
                msg = f"{explainer.method}: no tabular model to perturb"
                raise TypeError(msg)
            self.model = model
            self.x = model.impute(x)[0]
            if baseline is None:
                msg = "faithfulness needs a benign baseline (background.npz)"
                raise ValueError(msg)
            self.base = baseline

    def order(self, explanation: Explanation) -> list[int]:
        """Units (feature indices / syscall ids) the explanation ranks toward miner, in its order."""
        out: list[int] = []
        for c in explanation.contributions:
            if c.direction != "toward_miner":
                continue
            if self.sequence:
                name = c.feature.partition(".")[2]
                if name in _VOCAB_INDEX:
                    out.append(_VOCAB_INDEX[name])
            else:
                j = self.explainer.feature_index(c.feature)
                if j is not None:
                    out.append(j)
        return out

    def units(self) -> npt.NDArray[np.int64]:
        """What a random order permutes: features that differ from the baseline / distinct syscalls."""
        if self.sequence:
            return np.unique(self.x[self.x != PAD]).astype(np.int64)
        return np.flatnonzero(self.x != self.base).astype(np.int64)

    def curves(self, order: Sequence[int], steps: Sequence[int]) -> tuple[F64, F64]:
        rows_del, rows_ins = [], []
        for k in steps:
            chosen = np.asarray(list(order[:k]), dtype=np.int64)
            if self.sequence:
                hit = np.isin(self.x, chosen) & (self.x != PAD)
                rows_del.append(np.where(hit, PAD, self.x))
                rows_ins.append(np.where(hit, self.x, PAD))
            else:
                d, i = self.x.copy(), self.base.copy()
                d[chosen] = self.base[chosen]
                i[chosen] = self.x[chosen]
                rows_del.append(d)
                rows_ins.append(i)
        return self._score(np.stack(rows_del)), self._score(np.stack(rows_ins))

    def _score(self, rows: npt.NDArray[Any]) -> F64:
        if self.sequence:
            return self.explainer.score(rows)
        return self.model.score_imputed(rows)


_VOCAB_INDEX = {n: i for i, n in enumerate(VOCABULARY)}


@dataclass
class MethodQuality:
    method: str
    init_ms: float = 0.0
    cost_ms: list[float] = field(default_factory=list)
    deletion: list[F64] = field(default_factory=list)
    insertion: list[F64] = field(default_factory=list)
    deletion_random: list[F64] = field(default_factory=list)
    insertion_random: list[F64] = field(default_factory=list)
    full_scores: list[float] = field(default_factory=list)
    ranked_units: list[int] = field(default_factory=list)
    jaccard5: list[tuple[str, float]] = field(default_factory=list)
    jaccard10: list[tuple[str, float]] = field(default_factory=list)
    spearman: list[tuple[str, float]] = field(default_factory=list)
    r2: list[float] = field(default_factory=list)
    example: dict[str, Any] | None = None

    def summary(self, steps: Sequence[int]) -> dict[str, Any]:
        def stats(v: Sequence[float]) -> dict[str, float | int | None]:
            a = np.asarray([x for x in v if not math.isnan(x)], dtype=np.float64)
            if a.size == 0:
                return {"n": 0, "mean": None, "p50": None, "p95": None}
            return {
                "n": int(a.size),
                "mean": float(a.mean()),
                "p50": float(np.percentile(a, 50)),
                "p95": float(np.percentile(a, 95)),
            }

        def mean_curve(curves: list[F64]) -> list[float]:
            return np.mean(np.stack(curves), axis=0).tolist() if curves else []

        def by_label(items: list[tuple[str, float]]) -> dict[str, Any]:
            out: dict[str, Any] = {"all": stats([v for _, v in items])}
            for label in sorted({lab for lab, _ in items}):
                out[label] = stats([v for lab, v in items if lab == label])
            return out

        aucs = {
            name: [curve_auc(c, steps) for c in curves]
            for name, curves in (
                ("deletion", self.deletion),
                ("insertion", self.insertion),
                ("deletion_random", self.deletion_random),
                ("insertion_random", self.insertion_random),
            )
        }
        return {
            "method": self.method,
            "init_ms": self.init_ms,
            "cost_ms": stats(self.cost_ms),
            "windows": len(self.deletion),
            "score": stats(self.full_scores),
            "ranked_toward_miner": stats([float(u) for u in self.ranked_units]),
            "auc": {k: stats(v) for k, v in aucs.items()},
            "curves": {
                "steps": list(steps),
                "deletion": mean_curve(self.deletion),
                "insertion": mean_curve(self.insertion),
                "deletion_random": mean_curve(self.deletion_random),
                "insertion_random": mean_curve(self.insertion_random),
            },
            "stability": {
                "pairs": len(self.jaccard10),
                "jaccard5": by_label(self.jaccard5),
                "jaccard10": by_label(self.jaccard10),
                "spearman": by_label(self.spearman),
            },
            "lime_r2": stats(self.r2) if self.r2 else None,
            "example": self.example,
        }


# ---- sampling -------------------------------------------------------------------------------------------


def _round_robin(groups: list[list[tuple[int, int]]], n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Up to ``n`` items taken one per group in turn (groups and their items shuffled): spreads over runs."""
    pools = [list(g) for g in groups if g]
    for g in pools:
        rng.shuffle(g)
    order = rng.permutation(len(pools)).tolist()
    out: list[tuple[int, int]] = []
    while len(out) < n and any(pools[i] for i in order):
        for i in order:
            if pools[i] and len(out) < n:
                out.append(pools[i].pop())
    return out


def flagged_windows(
    runs: list[RunWindows], scores: list[F64], threshold: float, n: int, seed: int
) -> list[tuple[int, int]]:
    groups = [[(r, int(i)) for i in np.flatnonzero(s > threshold)] for r, s in enumerate(scores)]
    return _round_robin(groups, n, np.random.default_rng(seed))


def neighbour_pairs(runs: list[RunWindows], n: int, seed: int) -> list[tuple[int, int]]:
    """(run, i) such that windows i and i + 1 of the run are consecutive windows of one stream."""
    rng = np.random.default_rng(seed + 1)
    by_label: dict[str, list[list[tuple[int, int]]]] = {}
    for r, run in enumerate(runs):
        ws = run.windows
        pairs = [
            (r, i) for i in range(len(ws) - 1) if ws[i].key == ws[i + 1].key and ws[i + 1].index == ws[i].index + 1
        ]
        by_label.setdefault(run.label, []).append(pairs)
    labels = sorted(by_label)
    out: list[tuple[int, int]] = []
    for k, label in enumerate(labels):
        share = n // len(labels) + (1 if k < n % len(labels) else 0)
        out += _round_robin(by_label[label], share, rng)
    return out


# ---- measuring one model --------------------------------------------------------------------------------


@dataclass
class ModelQuality:
    directory: str
    name: str
    version: str
    input_kind: str
    windows_total: int
    flagged: int
    background: str
    methods: list[MethodQuality]
    manifest: ArtifactManifest

    def summary(self, steps: Sequence[int]) -> dict[str, Any]:
        m = self.manifest
        return {
            "directory": self.directory,
            "model": self.name,
            "version": self.version,
            "detector": m.detector,
            "input_kind": self.input_kind,
            "window_policy": m.feature_spec.get("window", {}),
            "threshold": m.threshold,
            "threshold_fpr": m.threshold_fpr,
            "threshold_source": m.threshold_source,
            "training_data": m.training_data.model_dump(mode="json"),
            "windows_total": self.windows_total,
            "flagged": self.flagged,
            "background": self.background,
            "methods": [q.summary(steps) for q in self.methods],
        }


def _reference_background(runs: list[RunWindows], directory: Path, spec: FeatureSpec) -> Background:
    """A background for an artifact saved without one: the dataset's windows, the model's importance."""
    from minerlens_training.artifacts import load_artifact
    from minerlens_training.explain.importance import global_importance

    X = np.concatenate([r.inputs for r in runs if len(r.windows)])
    y = np.concatenate([np.full(len(r.windows), int(r.label == "miner")) for r in runs if len(r.windows)])
    detector = load_artifact(directory).detector
    return Background.from_windows(spec.names, X, y, global_importance(detector, X, y))


class _Explanations:
    """Explanations of dataset windows, each computed once; records cost (and LIME's R²) as they come."""

    def __init__(self, explainer: WindowExplainer, runs: list[RunWindows], mq: MethodQuality, top: int) -> None:
        self.explainer, self.runs, self.mq, self.top = explainer, runs, mq, top
        self._cache: dict[tuple[int, int], Explanation] = {}

    def __call__(self, r: int, i: int) -> Explanation:
        if (r, i) not in self._cache:
            run = self.runs[r]
            e = self.explainer.explain(run.inputs[i], top=self.top, ids=run.windows[i].ids)
            self._cache[(r, i)] = e
            self.mq.cost_ms.append(e.cost_ms)
            if "r2" in e.params:
                self.mq.r2.append(float(e.params["r2"]))
        return self._cache[(r, i)]


def _measure_method(
    explainer: WindowExplainer, runs: list[RunWindows], mq: MethodQuality, cfg: QualityConfig, progress: Progress
) -> int:
    """Fill ``mq`` (faithfulness, stability, cost) for one explainer; returns how many windows it flags."""
    scores = [explainer.score(r.inputs) if len(r.windows) else np.zeros(0) for r in runs]
    flagged_n = int(sum(int((s > explainer.threshold).sum()) for s in scores))
    chosen = flagged_windows(runs, scores, explainer.threshold, cfg.windows, cfg.seed)
    progress(f"{mq.method}: {len(chosen)} flagged windows of {flagged_n}, faithfulness")
    explain = _Explanations(explainer, runs, mq, cfg.top)
    model = getattr(explainer, "model", None)
    baseline = model.benign_baseline() if isinstance(model, TabularModel) else None
    rng = np.random.default_rng(cfg.seed)
    for r, i in chosen:
        e = explain(r, i)
        if mq.example is None:
            mq.example = {"run": runs[r].run_id, "window": i, **e.model_dump(mode="json")}
        p = Perturbation(explainer, runs[r].inputs[i], baseline)
        order = p.order(e)
        mq.ranked_units.append(len(order))
        mq.full_scores.append(e.score)
        d, ins = p.curves(order, cfg.steps)
        mq.deletion.append(d)
        mq.insertion.append(ins)
        units = p.units()
        random_curves = [p.curves(rng.permutation(units).tolist(), cfg.steps) for _ in range(cfg.random_orders)]
        mq.deletion_random.append(np.mean([c[0] for c in random_curves], axis=0))
        mq.insertion_random.append(np.mean([c[1] for c in random_curves], axis=0))
    pairs = neighbour_pairs(runs, cfg.pairs, cfg.seed)
    progress(f"{mq.method}: stability on {len(pairs)} neighbouring-window pairs")
    for r, i in pairs:
        a, b = explain(r, i), explain(r, i + 1)
        label = runs[r].label
        names_a = [c.feature for c in a.contributions]
        names_b = [c.feature for c in b.contributions]
        mq.jaccard5.append((label, jaccard(names_a[:5], names_b[:5])))
        mq.jaccard10.append((label, jaccard(names_a[:10], names_b[:10])))
        rho = rank_correlation(
            {c.feature: c.contribution for c in a.contributions[:10]},
            {c.feature: c.contribution for c in b.contributions[:10]},
        )
        if rho is not None:
            mq.spearman.append((label, rho))
    return flagged_n


def measure_model(
    directories: Sequence[Path],
    model_dir: Path,
    methods: Sequence[str],
    cfg: QualityConfig,
    progress: Progress = lambda _: None,
) -> ModelQuality:
    verified = VerifiedManifest(Path(model_dir))
    manifest, spec = verified.manifest, verified.spec
    progress(f"{manifest.model_name}: windowing the dataset ({spec.window.kind} windows)")
    runs = dataset_runs(directories, spec, manifest)
    background: Background | None = None
    bg_note = "artifact background.npz"
    if manifest.input_kind == "features" and "background.npz" not in manifest.files:
        background = _reference_background(runs, Path(model_dir), spec)
        bg_note = "rebuilt from the dataset (the artifact has no background.npz)"
    if manifest.input_kind == "sequence":
        bg_note = "artifact background.npz" if "background.npz" in manifest.files else "none"
    results: list[MethodQuality] = []
    flagged_n = 0
    total = sum(len(r.windows) for r in runs)
    name = manifest.model_name

    def tell(message: str) -> None:
        progress(f"{name} {message}")

    for method in methods:
        t0 = time.perf_counter()
        explainer = load_explainer(Path(model_dir), method, background=background)
        mq = MethodQuality(method, init_ms=(time.perf_counter() - t0) * 1000.0)
        flagged_n = _measure_method(explainer, runs, mq, cfg, tell)
        results.append(mq)
    return ModelQuality(
        str(model_dir),
        manifest.model_name,
        manifest.version,
        manifest.input_kind,
        total,
        flagged_n,
        bg_note,
        results,
        manifest,
    )


@dataclass
class QualityResult:
    datasets: list[str]
    config: QualityConfig
    models: list[ModelQuality]
    machine: dict[str, Any] = field(default_factory=dict)
    """CPU count and load averages at start and end: cost numbers depend on them"""

    def to_json(self) -> dict[str, Any]:
        return {
            "datasets": self.datasets,
            "machine": self.machine,
            "config": {
                "windows": self.config.windows,
                "pairs": self.config.pairs,
                "top": self.config.top,
                "steps": list(self.config.steps),
                "random_orders": self.config.random_orders,
                "seed": self.config.seed,
            },
            "models": [m.summary(self.config.steps) for m in self.models],
        }


def measure_all(
    directories: Sequence[Path],
    feature_models: Sequence[Path],
    ae_models: Sequence[Path],
    cfg: QualityConfig,
    progress: Progress = lambda _: None,
) -> QualityResult:
    """Every feature model with ``cfg.methods``, every autoencoder with ``lstm-ae``."""
    jobs: Iterator[tuple[Path, Sequence[str]]] = iter(
        [*((Path(m), cfg.methods) for m in feature_models), *((Path(m), ("lstm-ae",)) for m in ae_models)]
    )
    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    models = [measure_model(directories, m, methods, cfg, progress) for m, methods in jobs]
    machine = {
        "cpus": os.cpu_count(),
        "load_1min_start": round(load_start, 2),
        "load_1min_end": round(os.getloadavg()[0], 2),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return QualityResult([str(d) for d in directories], cfg, models, machine)
