"""Write an evaluation report as JSON (everything), Markdown (the tables people read) and PNG plots.

``write_report(report, DIR, name)`` writes ``DIR/name.json``, ``DIR/name.md`` and ``DIR/name-*.png``
(``minerlens_training.plots``), the Markdown linking the figures by relative path. The sections about
generalization (trace level under the scorer's alert policy, alerts per benign pod-hour, implementations
held out, benign families one by one) are in ``report_generalization``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from minerlens_training import report_generalization as gen
from minerlens_training.report_format import scheme_label
from minerlens_training.report_format import table as _table

REPORT_NAME = "evaluation"
JSON_NAME = f"{REPORT_NAME}.json"
MD_NAME = f"{REPORT_NAME}.md"
_CALIBRATION = {
    "train": "training benign windows",
    "oof": "out-of-fold (grouped by run) scores of the training benign windows",
    "oof-family": "out-of-fold (grouped by family) scores of the training benign windows",
}
WINDOW_COLS = ("accuracy", "log_loss", "f1", "precision", "recall", "kappa", "roc_auc", "fpr")


def _clean(value: Any) -> Any:
    """NaN/inf -> None, so the JSON is strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def render_markdown(report: dict[str, Any], figures: dict[str, str] | None = None) -> str:
    """The Markdown report; ``figures`` maps a plot name (``roc``, ``families``, ``noise``, ``paper``) to its
    file name next to the Markdown."""
    figs = figures or {}
    cfg, ds = report["config"], report["dataset"]
    view = " (order-only view: timestamps, resource samples and fd kinds dropped)" if ds.get("order_only") else ""
    procs = f", {ds['process_windows']} of them process windows" if ds.get("process_windows") else ""
    out = [
        "# minerlens evaluation",
        "",
        f"Dataset `{ds['source']}` (manifest sha256 `{ds['manifest_sha256'][:16]}…`), window policy "
        f"`{json.dumps(ds['window_policy'])}`{view}, {ds['windows']} windows ({ds['miner_windows']} miner{procs}) "
        f"from {len(ds['runs'])} runs. Threshold: benign-window FPR ≤ {cfg['fpr']} on the "
        f"{_CALIBRATION[cfg.get('calibration', 'train')]} of each split's training part (never on its test part).",
        "",
    ]
    out += gen.splits_section(report)
    out += _models_section(report)
    out += [
        "## Pooled results (window level)",
        "",
        "Pod windows. Each window is scored once, by the model of the split that held it out (its family, its "
        "implementation or its run). The `random 70/30 (leaks)` rows are the paper-style random split of windows, "
        "for contrast only: windows of one run sit on both sides.",
        "",
    ]
    rows = []
    for model, schemes in report["pooled"].items():
        for scheme, res in schemes.items():
            if res:
                w = res["window"]
                rows.append([model, scheme_label(scheme), *(w.get(c) for c in WINDOW_COLS), int(w["n"])])
    out += [_table(["model", "split", *WINDOW_COLS, "windows"], rows), ""]
    out += _figure(figs, "roc", "ROC curves of the pooled window scores")
    out += gen.trace_section(report)
    out += gen.alert_rate_section(report)
    out += gen.implementation_section(report)
    out += gen.families_section(report)
    out += _figure(figs, "families", "Share of each held-out family's windows over the threshold, per model")
    out += gen.process_section(report)
    out += _failures_section(report)
    out += _group_sections(report, "noise", "Recall by injected-noise share (miners)")
    out += _group_sections(report, "throttle", "Recall on throttled miners")
    out += _figure(figs, "noise", "Miner recall by injected noise and throttling (LOFO)")
    out += _group_sections(report, "variants", "Recall by miner variant")
    out += gen.latency_section(report)
    out += _paper_section(report, figs)
    out += _window_section(report)
    return "\n".join(out) + "\n"


def _failures_section(report: dict[str, Any]) -> list[str]:
    from minerlens_training.evaluate import failures

    out = ["## Where each model fails (trace level)", ""]
    for model, schemes in report["pooled"].items():
        for scheme in ("lofo", "impl-out", "run-kfold"):
            runs = (schemes.get(scheme) or {}).get("runs")
            if not runs:
                continue
            f = failures(runs)
            missed = ", ".join(f["missed_miner_runs"]) or "none"
            alerted = ", ".join(f["alerted_benign_runs"]) or "none"
            n_m = sum(r["label"] == "miner" for r in runs)
            out.append(
                f"* **{model}, {scheme}**: missed {len(f['missed_miner_runs'])}/{n_m} miner runs ({missed}); "
                f"alerted on {len(f['alerted_benign_runs'])}/{len(runs) - n_m} benign runs ({alerted})."
            )
    return [*out, ""]


def _figure(figs: dict[str, str], name: str, alt: str) -> list[str]:
    return [f"![{alt}]({figs[name]})", ""] if name in figs else []


def _models_section(report: dict[str, Any]) -> list[str]:
    kinds = report["config"].get("kind_of_score", {})
    rows = []
    for model in report["pooled"]:
        splits = [s for s in report["splits"] if s["model"] == model]
        rows.append(
            [
                model,
                kinds.get(model, "miner probability"),
                len(splits),
                sum(s["fit_seconds"] for s in splits),
                sum(s.get("calibration_seconds", 0.0) for s in splits),
            ]
        )
    return [
        "## Models",
        "",
        _table(["model", "score", "splits", "fit seconds (sum)", "threshold calibration seconds (sum)"], rows),
        "",
        "`log_loss` of an anomaly score (the LSTM autoencoder) treats the score as a probability; it only "
        "compares runs of that model, not models.",
        "",
    ]


def _paper_section(report: dict[str, Any], figs: dict[str, str]) -> list[str]:
    paper = report.get("paper")
    if not paper:
        return []
    cols = ("accuracy", "f1", "precision", "recall", "kappa", "roc_auc", "fpr")
    rows = []
    for model, res in paper["results"].items():
        for scheme, label in (("paper-random-70/30", "paper: random 70/30 frames"), ("lofo", "LOFO frames")):
            if scheme in res:
                w = res[scheme]["window"]
                rows.append([model, label, *(w.get(c) for c in cols), int(w["n"])])
        honest = report["pooled"].get(model, {}).get("lofo")
        if honest:
            w = honest["window"]
            rows.append(
                [
                    model,
                    f"LOFO windows, {report['config']['fpr']} FPR threshold",
                    *(w.get(c) for c in cols),
                    int(w["n"]),
                ]
            )
    gap = []
    for model, res in paper["results"].items():
        a = res.get("paper-random-70/30", {}).get("window", {})
        b = res.get("lofo", {}).get("window", {})
        gap.append(
            [
                model,
                paper["reported_accuracy"].get(model),
                a.get("accuracy"),
                b.get("accuracy"),
                _diff(a.get("accuracy"), b.get("accuracy")),
                _diff(a.get("f1"), b.get("f1")),
                _diff(a.get("kappa"), b.get("kappa")),
                _diff(a.get("fpr"), b.get("fpr")),
            ]
        )
    return [
        "## The paper's setup versus honest splits",
        "",
        f"Raw {paper['frame_n']}-gram frames (stride 1, at most {paper['per_run']} contiguous frames from the middle "
        f"of each run, {paper['frames']} frames, {paper['miner_frames']} from miners, {paper['runs']} runs); the ids "
        f"are the features of tree/XGBoost/MLP and the LSTM's sequence. Decision rule: score > {paper['threshold']} "
        "(the paper's). `paper: random 70/30 frames` is the paper's validation; `LOFO frames` the same models and "
        "frames with whole families held out (pooled as above). The `LOFO windows` rows are this report's honest "
        "window-level numbers (other features and threshold) for reference.",
        "",
        _table(["model", "setup", *cols, "n"], rows),
        "",
        "Gap (random split minus LOFO; positive = the random split flatters the model):",
        "",
        _table(
            [
                "model",
                "paper reported accuracy",
                "random accuracy",
                "LOFO accuracy",
                "Δ accuracy",
                "Δ F1",
                "Δ kappa",
                "Δ FPR",
            ],
            gap,
        ),
        "",
        *_figure(figs, "paper", "Paper setup vs leave-one-family-out"),
    ]


def _diff(a: Any, b: Any) -> float | None:
    if isinstance(a, float) and isinstance(b, float) and math.isfinite(a) and math.isfinite(b):
        return a - b
    return None


def _window_section(report: dict[str, Any]) -> list[str]:
    rows_in = report.get("window_comparison")
    if not rows_in:
        return []
    rows: list[list[Any]] = []
    fails: list[str] = []
    for r in rows_in:
        for scheme in ("lofo", "run-kfold"):
            res = r.get(scheme)
            if not res:
                continue
            w, t, lat = res["window"], res["trace"], res.get("alert_latency", {})
            noise90 = next((g["window_recall"] for g in res.get("noise", []) if g["group"] == "90%"), None)
            rows.append(
                [
                    f"{r['seconds']:g} s",
                    scheme,
                    r["windows"],
                    r["miner_windows"],
                    w.get("recall"),
                    w.get("fpr"),
                    w.get("roc_auc"),
                    w.get("kappa"),
                    t.get("recall"),
                    t.get("fpr"),
                    lat.get("median_seconds"),
                    lat.get("p90_seconds"),
                    noise90,
                ]
            )
            missed = ", ".join(res.get("missed_miner_runs", [])) or "none"
            alerted = ", ".join(res.get("alerted_benign_runs", [])) or "none"
            fails.append(
                f"* {r['seconds']:g} s, {scheme}: missed miner runs: {missed}; alerted benign runs: {alerted}."
            )
    model = rows_in[0].get("model", "xgboost")
    pol = report["config"]["alert_policy"]
    lengths = ", ".join(f"{r['seconds']:g}" for r in rows_in)
    return [
        f"## Window length ({model})",
        "",
        f"Time windows of {lengths} s, same protocol ({report['config']['fpr']} FPR threshold, alert {pol['k']} "
        f"of the last {pol['n']} windows). Time to alert: from a miner run's first window to the end of the window "
        f"that raised the alert, over alerted runs; the floor is {pol['k']} windows.",
        "",
        _table(
            [
                "window",
                "split",
                "windows",
                "miner windows",
                "window recall",
                "window FPR",
                "ROC-AUC",
                "kappa",
                "trace recall",
                "trace FPR",
                "median s to alert",
                "p90 s to alert",
                "90 % noise window recall",
            ],
            rows,
        ),
        "",
        *fails,
        "",
    ]


def _group_sections(report: dict[str, Any], key: str, title: str) -> list[str]:
    rows = []
    for model, schemes in report["pooled"].items():
        for scheme in ("lofo", "impl-out", "run-kfold"):
            for g in (schemes.get(scheme) or {}).get(key, []):
                rows.append(
                    [
                        model,
                        scheme_label(scheme),
                        g["group"],
                        g["runs"],
                        g["windows"],
                        g["window_recall"],
                        g["trace_recall"],
                        g["runs_without_windows"],
                    ]
                )
    if not rows:
        return []
    header = ["model", "split", "group", "runs", "windows", "window recall", "trace recall", "runs without windows"]
    return [f"## {title}", "", _table(header, rows), ""]


def write_report(
    report: dict[str, Any], directory: Path, name: str = REPORT_NAME, plots: bool = True
) -> tuple[Path, Path]:
    """Write ``name.json``, ``name.md`` and (``plots``) ``name-*.png`` into ``directory``; returns (json, md)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    figures: dict[str, str] = {}
    if plots:
        from minerlens_training.plots import write_all

        figures = {p.stem.removeprefix(f"{name}-"): p.name for p in write_all(report, directory, name)}
    paths = (directory / f"{name}.json", directory / f"{name}.md")
    texts = (json.dumps(_clean(report), indent=1, allow_nan=False) + "\n", render_markdown(report, figures))
    for path, text in zip(paths, texts, strict=True):
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a report is for everyone to read
        os.replace(tmp, path)
    return paths
