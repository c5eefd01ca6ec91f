"""Write an evaluation report as JSON (everything) and Markdown (the tables people read)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

JSON_NAME = "evaluation.json"
MD_NAME = "evaluation.md"
_CALIBRATION = {
    "train": "training benign windows",
    "oof": "out-of-fold (grouped by run) scores of the training benign windows",
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


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: dict[str, Any]) -> str:
    cfg, ds = report["config"], report["dataset"]
    pol = cfg["alert_policy"]
    out = [
        "# minerlens evaluation",
        "",
        f"Dataset `{ds['source']}` (manifest sha256 `{ds['manifest_sha256'][:16]}…`), window policy "
        f"`{json.dumps(ds['window_policy'])}`, {ds['windows']} windows ({ds['miner_windows']} miner) from "
        f"{len(ds['runs'])} runs. Threshold: benign-window FPR ≤ {cfg['fpr']} on the "
        f"{_CALIBRATION[cfg.get('calibration', 'train')]} of each split. "
        f"Trace alert: {pol['k']} of the last {pol['n']} windows over the threshold.",
        "",
        "## Pooled results (window level)",
        "",
    ]
    rows = []
    for model, schemes in report["pooled"].items():
        for scheme, res in schemes.items():
            if res:
                rows.append([model, scheme, *(res["window"].get(c) for c in WINDOW_COLS), int(res["window"]["n"])])
    out += [_table(["model", "split", *WINDOW_COLS, "windows"], rows), ""]
    out += ["## Pooled results (trace level)", ""]
    rows = []
    for model, schemes in report["pooled"].items():
        for scheme, res in schemes.items():
            if res and res["trace"]["runs"]:
                t = res["trace"]
                rows.append(
                    [
                        model,
                        scheme,
                        t["recall"],
                        t["fpr"],
                        t["precision"],
                        t["accuracy"],
                        int(t["miner_runs"]),
                        int(t["benign_runs"]),
                        int(t["miner_runs_too_short"]),
                    ]
                )
    out += [
        _table(
            [
                "model",
                "split",
                "recall",
                "FPR",
                "precision",
                "accuracy",
                "miner runs",
                "benign runs",
                "miner runs < k windows",
            ],
            rows,
        ),
        "",
    ]
    out += _lofo_sections(report)
    out += _group_sections(report, "noise", "Recall by injected-noise share (miners)")
    out += _group_sections(report, "throttle", "Recall on throttled miners")
    out += _group_sections(report, "variants", "Recall by miner variant")
    return "\n".join(out) + "\n"


def _lofo_sections(report: dict[str, Any]) -> list[str]:
    out = ["## Leave-one-family-out, per held-out family", ""]
    for model in report["pooled"]:
        splits = [s for s in report["splits"] if s["model"] == model and s["scheme"] == "lofo"]
        fams = {f["family"]: f for f in report["pooled"][model].get("lofo", {}).get("families", [])}
        rows = []
        for s in splits:
            w, f = s["window"], fams.get(s["heldout"], {})
            rows.append(
                [
                    s["heldout"],
                    s["heldout_label"],
                    s["counterpart"],
                    f.get("windows"),
                    f.get("flagged_share"),
                    f"{f.get('runs_alerted', 0)}/{f.get('runs', 0)}",
                    *(w.get(c) for c in WINDOW_COLS),
                ]
            )
        out += [
            f"### {model}",
            "",
            "`flagged` is the share of the held-out family's windows over the threshold (its FPR if benign, its "
            "recall if miner); the metric columns are for the whole test set (held-out family + counterpart).",
            "",
            _table(["held out", "label", "counterpart", "windows", "flagged", "runs alerted", *WINDOW_COLS], rows),
            "",
        ]
    return out


def _group_sections(report: dict[str, Any], key: str, title: str) -> list[str]:
    rows = []
    for model, schemes in report["pooled"].items():
        for scheme in ("lofo", "run-kfold"):
            for g in schemes.get(scheme, {}).get(key, []):
                rows.append(
                    [
                        model,
                        scheme,
                        g["group"],
                        g["runs"],
                        g["windows"],
                        g["window_recall"],
                        g["trace_recall"],
                        g["runs_without_windows"],
                    ]
                )
    header = ["model", "split", "group", "runs", "windows", "window recall", "trace recall", "runs without windows"]
    return [f"## {title}", "", _table(header, rows), ""]


def write_report(report: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = (directory / JSON_NAME, directory / MD_NAME)
    texts = (json.dumps(_clean(report), indent=1, allow_nan=False) + "\n", render_markdown(report))
    for path, text in zip(paths, texts, strict=True):
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    return paths
