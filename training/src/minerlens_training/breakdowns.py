"""Pooled results broken down: per family (benign families one by one, look-alikes marked), per miner variant,
per implementation x variant, by injected noise and throttling."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from minerlens_training.datasets import MINER, Dataset
from minerlens_training.trace_level import alert_rate

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Record = dict[str, Any]

LOOKALIKES: tuple[str, ...] = (
    "batch-cpu",
    "hashing-jobs",
    "queue-workers",
    "keepalive-clients",
    "yield-heavy-runtimes",
)
"""benign families built to look like miners: CPU-bound hashing/compute jobs, CPU-bound queue workers, quiet pods with
long-lived connections, runtimes that call sched_yield a lot (``--lookalikes`` overrides)"""
_THROTTLE = re.compile(r"throttle-(\d+(?:\.\d+)?)")


def family_table(
    ds: Dataset, rows: I64, scores: F64, preds: npt.NDArray[np.bool_], runs: list[Record], lookalikes: Iterable[str]
) -> list[Record]:
    """One row per family of the pooled runs: pod-window share over the threshold (FPR of a benign family, recall
    of a miner family), alerts opened, runs alerted, max window score, pod-hours."""
    look = set(lookalikes)
    pod = ~ds.is_process[rows]
    fam = ds.column("family")[rows]
    out = []
    for f in sorted({r["family"] for r in runs}, key=lambda f: (f.startswith("miner"), f not in look, f)):
        fr = [r for r in runs if r["family"] == f]
        mask = (fam == f) & pod
        all_rows = fam == f
        rate = alert_rate(fr)
        out.append(
            {
                "family": f,
                "label": fr[0]["label"],
                "lookalike": f in look,
                "runs": len(fr),
                "windows": int(mask.sum()),
                "flagged_share": float(preds[mask].mean()) if mask.any() else None,
                "runs_alerted": sum(r["alerted"] for r in fr),
                "alerts": sum(r["alerts"] for r in fr),
                "max_score": float(scores[all_rows].max()) if all_rows.any() else None,
                "pod_hours": rate["pod_hours"],
                "per_100_pod_hours": rate["per_100_pod_hours"] if fr[0]["label"] != MINER else None,
                "runs_without_windows": sum(r["windows"] == 0 for r in fr),
            }
        )
    return out


def miner_windows(run: Record) -> tuple[int, int]:
    """(flagged, all) windows of what mines in a miner run: its miner process's own windows when the pod holds
    other processes too (a miner hidden in a web pod, a noise companion: the scorer scores that process on its
    own and the alert names it), else the pod's windows."""
    if run.get("process_miner_windows"):
        return int(run["process_miner_flagged"]), int(run["process_miner_windows"])
    return int(run["flagged"]), int(run["windows"])


def group_recall(runs: Iterable[Record], key: Callable[[Record], str | None]) -> list[Record]:
    """Window and trace recall (and time to alert) of the runs grouped by ``key`` (None: left out)."""
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in runs:
        k = key(r)
        if k is not None:
            groups[k].append(r)
    out = []
    for k in sorted(groups, key=lambda s: (len(s), s)):
        g = groups[k]
        windows = sum(r["windows"] for r in g)
        lat = [r["latency_s"] for r in g if r["alerted"] and r.get("latency_s") is not None]
        mine = [miner_windows(r) for r in g]
        out.append(
            {
                "group": k,
                "runs": len(g),
                "windows": windows,
                "window_recall": sum(r["flagged"] for r in g) / windows if windows else None,
                "miner_window_recall": (
                    sum(f for f, _ in mine) / sum(n for _, n in mine) if sum(n for _, n in mine) else None
                ),
                "trace_recall": sum(r["alerted"] for r in g) / len(g),
                "runs_alerted": sum(r["alerted"] for r in g),
                "median_latency_s": float(np.median(lat)) if lat else None,
                "runs_without_windows": sum(r["windows"] == 0 for r in g),
                "missed": [r["run_id"] for r in g if not r["alerted"]],
            }
        )
    return out


def variant_kind(variant: str) -> str:
    """A miner variant's kind, for the per-variant table: ``noise-90`` -> ``noise 90%``, ``throttle-12`` ->
    ``throttled 12%``, anything else as is (``yield``, ``no-yield``, ``light``, ``renamed``, ``hidden-web``...)."""
    m = re.search(r"noise-(\d+)", variant)
    if m:
        return f"noise {m.group(1)}%"
    m = _THROTTLE.search(variant)
    if m:
        return f"throttled {m.group(1)}%"
    return variant or "(default)"


def implementation_variants(runs: list[Record]) -> list[Record]:
    """Miner runs grouped by implementation and variant kind."""
    rows = group_recall(
        (r for r in runs if r["label"] == MINER),
        lambda r: f"{r.get('implementation') or '?'} | {variant_kind(r['variant'])}",
    )
    for row in rows:
        impl, _, kind = row["group"].partition(" | ")
        row["implementation"], row["variant"] = impl, kind
    return sorted(rows, key=lambda r: (r["implementation"], r["variant"]))


def breakdowns(
    ds: Dataset, rows: I64, scores: F64, preds: npt.NDArray[np.bool_], runs: list[Record], lookalikes: Iterable[str]
) -> dict[str, Any]:
    return {
        "families": family_table(ds, rows, scores, preds, runs, lookalikes),
        "noise": group_recall(runs, lambda r: None if r["noise"] is None else f"{r['noise']}%"),
        "throttle": group_recall(
            runs, lambda r: None if r["label"] != MINER else ("throttled" if r["throttled"] else "not throttled")
        ),
        "variants": group_recall(runs, lambda r: r["variant"] if r["label"] == MINER else None),
        "implementations": implementation_variants(runs),
    }
