"""Markdown sections of the evaluation report about generalization: trace level with the scorer's alert policy,
alerts per 100 benign pod-hours, miner implementations held out (per variant), benign families one by one
(look-alikes first), process windows, and time to alert per miner run."""

from __future__ import annotations

from typing import Any

from minerlens_training.report_format import fmt, scheme_label, table
from minerlens_training.trace_level import poisson_interval

METRICS = ("accuracy", "log_loss", "f1", "precision", "recall", "kappa", "roc_auc", "fpr")
Report = dict[str, Any]


def _pooled(report: Report) -> list[tuple[str, str, Report]]:
    return [(m, s, res) for m, schemes in report["pooled"].items() for s, res in schemes.items() if res]


def splits_section(report: Report) -> list[str]:
    cfg = report["config"]
    lines = ["## Splits", ""]
    texts = {
        "lofo": "each family (benign and miner) is held out in turn"
        + (f", families dealt into {cfg['lofo_folds']} held-out groups" if cfg.get("lofo_folds") else "")
        + "; training has every other family",
        "impl-out": "each miner implementation (XMRig, the lab's C miners...) is held out with one group of benign "
        "families (benign families dealt round-robin by name into one group per implementation)",
        "run-kfold": "whole runs held out, stratified group k-fold over runs (families are seen in training)",
        "leaky-random": "the paper's random 70/30 split of windows: windows of one run on both sides (contrast only)",
    }
    for scheme, title in cfg.get("schemes", {}).items():
        lines.append(f"* **{title}** (`{scheme}`): {texts.get(scheme, '')}.")
    for scheme, why in cfg.get("unavailable_schemes", {}).items():
        lines.append(f"* `{scheme}` has no split on this dataset: {why}.")
    cap = cfg.get("train_cap")
    if cap:
        lines.append(
            f"* Training windows capped at {cap} per run and window kind (pod / process); every test window is scored."
        )
    extra = [
        text
        for key, text in (
            ("context_dropout", "each window's twin without resource samples and fd kinds (context dropout)"),
            ("quiet_twins", "each window with resource samples as a twin without syscall identities (quiet twins)"),
        )
        if cfg.get(key)
    ]
    if extra:
        lines.append(f"* Training adds {' and '.join(extra)}; the twins are never test windows.")
    return [*lines, ""]


def trace_section(report: Report) -> list[str]:
    pol = report["config"]["alert_policy"]
    rows = []
    for model, scheme, res in _pooled(report):
        t = res.get("trace")
        if not t or not t.get("runs"):
            continue
        rate, lat = res.get("alert_rate", {}), res.get("alert_latency", {})
        rows.append(
            [
                model,
                scheme_label(scheme),
                *(t.get(c) for c in METRICS),
                f"{int(t['miner_runs'])}/{int(t['benign_runs'])}",
                rate.get("per_100_pod_hours"),
                _to_alert(lat, "median"),
                _to_alert(lat, "p90"),
            ]
        )
    return [
        "## Pooled results (trace level, the scorer's alert policy)",
        "",
        "Each test run's window scores are replayed in time order through the scorer's alert policy "
        f"({pol.get('text', '')}). "
        "A run is predicted *miner* when an alert opens; its score is the k-th highest of n consecutive scored "
        "windows (the run alerts iff that is above the threshold), which gives ROC-AUC and log loss per run.",
        "",
        table(
            [
                "model",
                "split",
                *METRICS,
                "miner/benign runs",
                "alerts per 100 benign pod-hours",
                "median to alert",
                "p90 to alert",
            ],
            rows,
        ),
        "",
    ]


def _to_alert(lat: Report, q: str) -> str:
    """Time to alert in seconds, or in windows when the windows have no time (order-only count windows)."""
    if lat.get(f"{q}_seconds") is not None:
        return f"{lat[f'{q}_seconds']:.1f} s"
    if lat.get(f"{q}_windows") is not None:
        return f"{lat[f'{q}_windows']:g} windows"
    return "n/a"


def alert_rate_section(report: Report) -> list[str]:
    rows = []
    hours = None
    for model, scheme, res in _pooled(report):
        rate = res.get("alert_rate")
        if not rate or scheme == "leaky-random":
            continue
        hours = rate["pod_hours"]
        lo, hi = rate["per_100_pod_hours_ci95"]
        rows.append(
            [
                model,
                scheme_label(scheme),
                rate["benign_runs"],
                f"{rate['pod_seconds']:.0f} s = {rate['pod_hours']:.4f} h",
                rate["alerts"],
                rate["runs_alerted"],
                rate["per_100_pod_hours"],
                f"{fmt(lo, 1)} to {fmt(hi, 1)}",
            ]
        )
    if not rows:
        return []
    note = ""
    if hours is not None and hours < 100:
        note = (
            f" **The denominator is tiny**: the benign runs add up to {hours:.3f} pod-hours, so one alert is "
            f"{100 / hours:.0f} per 100 pod-hours when it happens and the 95 % interval of zero alerts still reaches "
            f"{100 * poisson_interval(0)[1] / hours:.0f}: only a zero count says something here, and only weakly."
        )
    return [
        "## Alerts per 100 benign pod-hours",
        "",
        "Alerts opened on benign runs (each resolve-then-reopen counts again) per 100 hours of observed benign pod "
        "time (the benign runs' capture seconds / 3600), with the exact Poisson 95 % interval." + note,
        "",
        table(
            [
                "model",
                "split",
                "benign runs",
                "pod time",
                "alerts",
                "runs alerted",
                "per 100 pod-hours",
                "95 % interval",
            ],
            rows,
        ),
        "",
    ]


def implementation_section(report: Report) -> list[str]:
    cfg = report["config"]
    if "impl-out" in cfg.get("unavailable_schemes", {}) or "impl-out" not in cfg.get("schemes", {}):
        why = cfg.get("unavailable_schemes", {}).get("impl-out", "not run")
        return ["## Miner implementations held out", "", f"Not measured: {why}.", ""]
    out = [
        "## Miner implementations held out",
        "",
        "Every miner run scored by the model trained without any run of its implementation (and without the "
        "benign families tested beside it); recall per implementation and variant. *Pod-window recall*: the "
        "pod's windows; *miner-window recall*: the windows of what mines — the miner process's own windows "
        "where the pod runs other processes too (hidden in a web pod, a noise companion), else the pod's.",
        "",
    ]
    for model, schemes in report["pooled"].items():
        res = schemes.get("impl-out") or {}
        rows = [
            [
                g["implementation"],
                g["variant"],
                g["runs"],
                g["windows"],
                g["window_recall"],
                g.get("miner_window_recall"),
                f"{g['runs_alerted']}/{g['runs']}",
                g["median_latency_s"],
                ", ".join(g["missed"]) or "-",
            ]
            for g in res.get("implementations", [])
        ]
        fam = [f for f in res.get("families", []) if f["label"] != "miner"]
        benign = res.get("alert_rate", {})
        out += [
            f"### {model}",
            "",
            table(
                [
                    "implementation",
                    "variant",
                    "runs",
                    "windows",
                    "pod-window recall",
                    "miner-window recall",
                    "runs alerted",
                    "median s to alert",
                    "missed runs",
                ],
                rows,
            ),
            "",
            f"Benign side of these splits: {benign.get('benign_runs', 0)} runs of {len(fam)} families, "
            f"{benign.get('alerts', 0)} alerts ({fmt(benign.get('per_100_pod_hours'), 1)} per 100 pod-hours), "
            f"window FPR {fmt(res.get('window', {}).get('fpr'))}.",
            "",
        ]
    return out


def families_section(report: Report) -> list[str]:
    out = [
        "## Benign families one by one (leave-one-family-out)",
        "",
        "Each benign family scored by the model that never saw it. Look-alike families (built to resemble miners: "
        f"{', '.join(report['config'].get('lookalikes', [])) or 'none'}) come first. *Window FPR* is the share of "
        "its pod windows over the threshold; *alerts* are opened by the replayed alert policy.",
        "",
    ]
    for model, schemes in report["pooled"].items():
        fams = (schemes.get("lofo") or {}).get("families", [])
        rows = [
            [
                f["family"],
                "yes" if f.get("lookalike") else "",
                f["runs"],
                f["windows"],
                f["flagged_share"],
                f["alerts"],
                f"{f['runs_alerted']}/{f['runs']}",
                f["max_score"],
                round(f["pod_hours"] * 3600, 1),
                f.get("per_100_pod_hours"),
            ]
            for f in fams
            if f["label"] != "miner"
        ]
        miners = [
            [
                f["family"],
                f["runs"],
                f["windows"],
                f["flagged_share"],
                f"{f['runs_alerted']}/{f['runs']}",
                f["max_score"],
            ]
            for f in fams
            if f["label"] == "miner"
        ]
        if not rows and not miners:
            continue
        out += [
            f"### {model}",
            "",
            table(
                [
                    "benign family",
                    "look-alike",
                    "runs",
                    "windows",
                    "window FPR",
                    "alerts",
                    "runs alerted",
                    "max score",
                    "pod seconds",
                    "alerts per 100 pod-hours",
                ],
                rows,
            ),
            "",
        ]
        if miners:
            out += [
                table(["miner family", "runs", "windows", "window recall", "runs alerted", "max score"], miners),
                "",
            ]
    return out


def process_section(report: Report) -> list[str]:
    rows = []
    for model, scheme, res in _pooled(report):
        w = res.get("process_window")
        if w:
            runs = [r for r in res.get("runs", []) if r.get("process_windows")]
            named = [r["names_miner_process"] for r in runs if r.get("names_miner_process") is not None]
            rows.append(
                [
                    model,
                    scheme_label(scheme),
                    int(w["n"]),
                    w.get("recall"),
                    w.get("fpr"),
                    w.get("roc_auc"),
                    f"{sum(named)}/{len(named)}" if named else "-",
                ]
            )
    if not rows:
        return []
    return [
        "## Process windows",
        "",
        "Windows of one process inside a pod (labelled miner only when the process is the run's miner). "
        "*Names the miner* counts the alerted miner runs whose first process alert was on a miner process.",
        "",
        table(["model", "split", "windows", "recall", "FPR", "ROC-AUC", "names the miner"], rows),
        "",
    ]


def latency_section(report: Report) -> list[str]:
    """Per miner run: alerted, seconds to alert, under the most telling scheme available (impl-out, else LOFO)."""
    out: list[str] = []
    for model, schemes in report["pooled"].items():
        scheme = "impl-out" if schemes.get("impl-out") else "lofo"
        runs = [r for r in (schemes.get(scheme) or {}).get("runs", []) if r["label"] == "miner"]
        if not runs:
            continue
        rows = [
            [
                r["run_id"],
                r.get("implementation", ""),
                r["variant"],
                r["windows"],
                r["flagged"] / r["windows"] if r["windows"] else None,
                r["alerted"],
                r.get("latency_s"),
                r.get("first_alert_comm", ""),
            ]
            for r in sorted(runs, key=lambda r: r["run_id"])
        ]
        out += [
            f"<details><summary>{model}: every miner run ({scheme_label(scheme)})</summary>",
            "",
            table(
                [
                    "run",
                    "implementation",
                    "variant",
                    "windows",
                    "window recall",
                    "alerted",
                    "s to alert",
                    "first process alerted",
                ],
                rows,
            ),
            "",
            "</details>",
            "",
        ]
    if not out:
        return []
    return [
        "## Time to alert, per miner run",
        "",
        "Seconds from the run's first window to the end of the window that opened its first alert (replayed "
        "policy); a lab run starts capturing when the miner starts, so this includes any start-up before hashing.",
        "",
        *out,
    ]
