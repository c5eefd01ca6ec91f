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

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from minerlens_core.datasets.manifest import load_manifest
from minerlens_core.features import FeatureSpec, Window, vectorize_many, window_sequence, windows_from_trace
from minerlens_core.models import ArtifactManifest, Background, VerifiedManifest
from minerlens_core.models.onnx_model import pad_sequences
from minerlens_core.schemas.explanations import Explanation
from minerlens_core.traces import read_trace

from minerlens_training.errors import DatasetError
from minerlens_training.explain.base import WindowExplainer
from minerlens_training.explain.loader import load_explainer
from minerlens_training.explain.quality_measures import F64 as F64
from minerlens_training.explain.quality_measures import PAD as PAD
from minerlens_training.explain.quality_measures import MethodQuality as MethodQuality
from minerlens_training.explain.quality_measures import Perturbation as Perturbation
from minerlens_training.explain.quality_measures import curve_auc as curve_auc
from minerlens_training.explain.quality_measures import jaccard as jaccard
from minerlens_training.explain.quality_measures import rank_correlation as rank_correlation
from minerlens_training.explain.tabular import TabularModel

Progress = Callable[[str], None]


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
