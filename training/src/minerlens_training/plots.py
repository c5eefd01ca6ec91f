"""PNG figures of an evaluation report (matplotlib, Agg backend), drawn from the report JSON alone.

* ``roc``: pooled ROC curves per model, one panel per split scheme (leave-one-family-out, run k-fold);
* ``families``: per held-out family (LOFO), the share of its windows over the threshold, per model
  (benign families: that is their FPR; miner families: their recall);
* ``noise``: LOFO window and trace recall of miners by injected-noise share and throttling, per model;
* ``paper``: accuracy / F1 / kappa of the paper's random frame split against leave-one-family-out.

Each function returns the file it wrote, or None when the report has nothing to draw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

_SCHEMES = (("lofo", "leave-one-family-out"), ("run-kfold", "run k-fold"))
_PNG_META = {"Software": None}  # no matplotlib version in the file: re-running gives the same bytes


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110, metadata=_PNG_META, bbox_inches="tight")
    plt.close(fig)
    return path


def _bars(ax: Any, x: Any, vals: list[Any], width: float, offset: float, label: str, color: str) -> None:
    """Bars plus a tick at each bar's top, so a value of 0 is visible (and told apart from "no value")."""
    ys = np.array([np.nan if v is None else v for v in vals], dtype=np.float64)
    ax.bar(x + offset, ys, width, label=label, color=color)
    ax.plot(x + offset, ys, ls="none", marker="_", markersize=max(4.0, 40 * width), color=color, mew=2)


def _legend_above(fig: Figure, ax: Any, ncol: int) -> None:
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=ncol, fontsize=8, frameon=False)


def _colors(models: list[str]) -> dict[str, str]:
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {m: cycle[i % len(cycle)] for i, m in enumerate(models)}


def roc(report: dict[str, Any], path: Path) -> Path | None:
    pooled = report.get("pooled", {})
    if not pooled:
        return None
    fig, axes = plt.subplots(1, len(_SCHEMES), figsize=(5.2 * len(_SCHEMES), 4.6), squeeze=False, layout="constrained")
    for ax, (scheme, title) in zip(axes[0], _SCHEMES, strict=True):
        for model, schemes in pooled.items():
            res = schemes.get(scheme) or {}
            curve = res.get("roc") or {}
            if not curve.get("fpr"):
                continue
            auc = res["window"].get("roc_auc")
            label = f"{model} (AUC {auc:.3f})" if isinstance(auc, float) and np.isfinite(auc) else model
            ax.step(curve["fpr"], curve["tpr"], where="post", label=label)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
        fpr = report.get("config", {}).get("fpr")
        if fpr:
            ax.axvline(fpr, color="grey", lw=0.8, ls="--")
        ax.set(title=f"ROC, {title} (pooled windows)", xlabel="false-positive rate", ylabel="true-positive rate")
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def families(report: dict[str, Any], path: Path) -> Path | None:
    pooled = report.get("pooled", {})
    tables = {m: {f["family"]: f for f in s.get("lofo", {}).get("families", [])} for m, s in pooled.items()}
    tables = {m: t for m, t in tables.items() if t}
    if not tables:
        return None
    fams = sorted({f for t in tables.values() for f in t}, key=lambda f: (f.startswith("miner"), f))
    models = list(tables)
    width = 0.8 / len(models)
    x = np.arange(len(fams))
    colors = _colors(list(pooled))
    fig, ax = plt.subplots(figsize=(max(8.0, 0.75 * len(fams) + 2), 4.6), layout="constrained")
    for i, model in enumerate(models):
        vals = [tables[model].get(f, {}).get("flagged_share") for f in fams]
        _bars(ax, x, vals, width, (i - (len(models) - 1) / 2) * width, model, colors[model])
    n_benign = sum(not f.startswith("miner") for f in fams)
    ax.axvline(n_benign - 0.5, color="black", lw=0.8)
    ax.text(n_benign / 2 - 0.5, 1.04, "benign families: FPR (lower is better)", ha="center", fontsize=8)
    ax.text(n_benign + (len(fams) - n_benign) / 2 - 0.5, 1.04, "miner families: recall", ha="center", fontsize=8)
    ax.set_xticks(x, fams, rotation=35, ha="right", fontsize=8)
    ax.set(ylim=(0, 1.1), ylabel="share of windows over the threshold")
    ax.set_title("Leave-one-family-out: each family scored by the model that never saw it", pad=18)
    _legend_above(fig, ax, len(models))
    return _save(fig, path)


def noise(report: dict[str, Any], path: Path) -> Path | None:
    pooled = report.get("pooled", {})
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for model, schemes in pooled.items():
        lofo = schemes.get("lofo") or {}
        groups = {f"noise {g['group']}": g for g in lofo.get("noise", [])}
        groups |= {g["group"]: g for g in lofo.get("throttle", [])}
        if groups:
            rows[model] = groups
    if not rows:
        return None
    names = sorted({g for r in rows.values() for g in r}, key=lambda g: (not g.startswith("noise"), len(g), g))
    colors = _colors(list(pooled))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    width = 0.8 / len(rows)
    x = np.arange(len(names))
    for ax, key, title in zip(axes, ("window_recall", "trace_recall"), ("window recall", "trace recall"), strict=True):
        for i, (model, r) in enumerate(rows.items()):
            vals = [r.get(g, {}).get(key) for g in names]
            _bars(ax, x, vals, width, (i - (len(rows) - 1) / 2) * width, model, colors[model])
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set(ylim=(0, 1.05), title=f"Miners, leave-one-family-out: {title}")
    _legend_above(fig, axes[0], len(rows))
    return _save(fig, path)


def paper(report: dict[str, Any], path: Path) -> Path | None:
    res = (report.get("paper") or {}).get("results") or {}
    if not res:
        return None
    metrics = ("accuracy", "f1", "kappa")
    models = list(res)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.8), sharey=True, layout="constrained")
    x = np.arange(len(models))
    setups = (("paper-random-70/30", "paper: random 70/30 split of frames"), ("lofo", "leave-one-family-out frames"))
    colors = _colors([s for s, _ in setups])
    for ax, metric in zip(axes, metrics, strict=True):
        for i, (scheme, label) in enumerate(setups):
            vals = [res[m].get(scheme, {}).get("window", {}).get(metric) for m in models]
            _bars(ax, x, vals, 0.4, (i - 0.5) * 0.4, label, colors[scheme])
        ax.set_xticks(x, models)
        ax.set(title=metric, ylim=(min(0.0, ax.get_ylim()[0]), 1.05))
    _legend_above(fig, axes[0], 2)
    return _save(fig, path)


def write_all(report: dict[str, Any], directory: Path, stem: str) -> list[Path]:
    out = []
    for name, draw in (("roc", roc), ("families", families), ("noise", noise), ("paper", paper)):
        p = draw(report, Path(directory) / f"{stem}-{name}.png")
        if p is not None:
            out.append(p)
    return out
