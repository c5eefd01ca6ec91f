"""Per-run (trace-level) results: the scorer's alert policy replayed over each run's window scores.

``run_record`` replays ``alert_replay.replay`` over one run's pod in time order — with process windows,
over its *slots* as the scorer's AlertEngine counts them (a window span's stream window and process windows
count once, with the highest score, whose window names the process); without time (count windows) over
each alert stream on its own — and records whether and when the
run alerted, how many alerts opened (a benign run can open several: each resolves, then re-opens), and
the run's *alert score* (max over its streams of the k-th highest of n consecutive scored windows: the
run alerts at threshold t iff its alert score is above t, which gives trace-level ROC-AUC and log loss).

``alert_rate`` turns the benign runs into **alerts per 100 benign pod-hours** (pod-hours = the benign
runs' capture seconds / 3600), with the exact Poisson 95 % interval, because the lab observes only
minutes of benign pods and the denominator is tiny. ``alert_latency`` gives, over the miner runs that
alerted, the seconds from the run's first window to the end of the window that opened its first alert.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import chi2

from minerlens_training.alert_replay import ScorerAlertPolicy, replay
from minerlens_training.datasets import MINER, Dataset
from minerlens_training.metrics import binary_metrics

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
NS = 1e9


def _stream_order(ds: Dataset, rows: I64) -> I64:
    """``rows`` of one stream in arrival order: by window start when every window has a time, else as cut."""
    start = ds.start_ns[rows]
    if rows.size and (start >= 0).all():
        return rows[np.argsort(start, kind="stable")]
    return rows


def _end_s(ds: Dataset, rows: I64) -> F64:
    end = ds.end_ns[rows].astype(np.float64)
    end[ds.end_ns[rows] < 0] = np.nan
    return end / NS


def _arrival_order(ds: Dataset, rows: I64) -> I64:
    """The run's windows as the scorer receives them: by window start, the stream window before its process
    windows (by pid)."""
    return rows[np.lexsort((ds.pid[rows], ds.is_process[rows], ds.start_ns[rows]))]


def run_record(ds: Dataset, i: int, scores: F64, threshold: float, policy: ScorerAlertPolicy) -> dict[str, Any]:
    """The trace-level record of run ``i``; ``scores`` are the scores of ``ds.run_rows(i)``, in that order."""
    run = ds.runs[i]
    rows = ds.run_rows(i)
    score_of = dict(zip(rows.tolist(), np.asarray(scores, np.float64).tolist(), strict=True))
    proc = ds.is_process[rows]
    pod_rows, proc_rows = rows[~proc], rows[proc]
    has_res = ds.has_resources[rows] if rows.size else np.zeros(0, np.bool_)
    gate = ds.gated(policy.gate)
    over_of = {r: score_of[r] > threshold and not gate[r] for r in score_of}
    known = rows.size > 0 and bool((ds.start_ns[rows] >= 0).all())
    run_start = int(ds.start_ns[rows].min()) if known else None
    first_time: float | None = None
    first_pod_window: int | None = None
    first_proc: tuple[float, str] | None = None
    alerts = pod_alerts = 0
    best = 0.0
    pod_scored = 0
    if proc_rows.size and known:
        # the scorer's AlertEngine counts a slot (one window span of the pod) once across its stream window and
        # its process windows: over when any is, with the highest score, whose window is the alert's evidence
        arrived = _arrival_order(ds, rows)
        sa = replay(
            [score_of[r] for r in arrived.tolist()],
            threshold,
            ds.count[arrived],
            _end_s(ds, arrived),
            policy,
            has_res[arrived - rows[0]],
            slots=ds.start_ns[arrived],
            gated=gate[arrived],
        )
        best, alerts, pod_alerts, pod_scored = sa.alert_score, len(sa.opened), len(sa.opened), sa.scored
        at = sa.first_open
        if at is not None and run_start is not None:
            slot = arrived[ds.start_ns[arrived] == ds.start_ns[arrived[at]]]
            evidence = int(slot[int(np.argmax([score_of[r] for r in slot.tolist()]))])
            first_time = (int(ds.end_ns[arrived[at]]) - run_start) / NS
            first_pod_window = int(np.unique(ds.start_ns[arrived[: at + 1]]).size) - 1
            first_proc = (first_time, str(ds.comm[evidence]) if ds.is_process[evidence] else "")
    by_stream = rows[np.argsort(ds.stream[rows], kind="stable")]
    bounds = np.flatnonzero(np.diff(ds.stream[by_stream])) + 1
    for group in np.split(by_stream, bounds) if rows.size and not (proc_rows.size and known) else []:
        srows = _stream_order(ds, group)
        sa = replay(
            [score_of[r] for r in srows.tolist()],
            threshold,
            ds.count[srows],
            _end_s(ds, srows),
            policy,
            has_res[srows - rows[0]],
            gated=gate[srows],
        )
        best = max(best, sa.alert_score)
        alerts += len(sa.opened)
        is_proc = bool(ds.is_process[srows[0]])
        if not is_proc:
            pod_scored += sa.scored
            pod_alerts += len(sa.opened)
        at = sa.first_open
        if at is None:
            continue
        when = (ds.end_ns[srows[at]] - run_start) / NS if run_start is not None else float(at + 1)
        if first_time is None or when < first_time:
            first_time = when
        if not is_proc and first_pod_window is None:
            first_pod_window = at
        if is_proc and (first_proc is None or when < first_proc[0]):
            first_proc = (when, str(ds.comm[srows[0]]))
    pod_scores = np.array([score_of[r] for r in pod_rows.tolist()], np.float64)
    flagged = sum(over_of[r] for r in pod_rows.tolist())
    rec: dict[str, Any] = {
        "run": i,
        "run_id": run.run_id,
        "workload": run.workload,
        "family": run.family,
        "label": run.label,
        "variant": run.variant,
        "implementation": run.implementation,
        "noise": run.noise,
        "throttled": run.throttled,
        "syscalls": run.syscalls,
        "seconds": run.seconds,
        "windows": int(pod_rows.size),
        "flagged": flagged,
        "alerted": alerts > 0,
        "alerts": alerts,
        "pod_alerts": pod_alerts,
        "first_alert_window": first_pod_window,
        "latency_s": None if first_time is None or run_start is None else round(first_time, 3),
        "too_short": pod_scored < policy.k,
        "mean_score": float(pod_scores.mean()) if pod_scores.size else None,
        "max_score": float(max(score_of.values())) if score_of else None,
        "alert_score": best,
    }
    if proc_rows.size:
        miner_proc = proc_rows[ds.y[proc_rows] == 1]
        rec["process_windows"] = int(proc_rows.size)
        rec["process_miner_windows"] = int(miner_proc.size)
        rec["process_miner_flagged"] = sum(over_of[r] for r in miner_proc.tolist())
        rec["process_benign_flagged"] = sum(over_of[r] for r in proc_rows.tolist()) - rec["process_miner_flagged"]
        rec["first_alert_comm"] = None if first_proc is None else first_proc[1]
        rec["names_miner_process"] = (
            None if first_proc is None or not run.miner_comms else first_proc[1] in run.miner_comms
        )
    return rec


def trace_block(records: list[dict[str, Any]]) -> dict[str, float]:
    """The seven metrics plus FPR over runs (alerted = predicted miner; alert score = the score), and counts."""
    y = np.array([int(r["label"] == MINER) for r in records], np.int64)
    alerted = np.array([r["alerted"] for r in records], np.bool_)
    score = np.array([r["alert_score"] for r in records], np.float64)
    out = binary_metrics(y, score, alerted)
    out |= {
        "runs": float(y.size),
        "miner_runs": float(y.sum()),
        "benign_runs": float(y.size - y.sum()),
        "miner_runs_too_short": float(sum(r["too_short"] and r["label"] == MINER for r in records)),
    }
    return out


def poisson_interval(count: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) confidence interval of a Poisson count."""
    a = 1.0 - level
    lo = 0.0 if count == 0 else float(chi2.ppf(a / 2, 2 * count) / 2)
    hi = float(chi2.ppf(1 - a / 2, 2 * (count + 1)) / 2)
    return lo, hi


def alert_rate(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Alerts opened on benign runs per 100 benign pod-hours (with the exact 95 % interval)."""
    benign = [r for r in records if r["label"] != MINER]
    alerts = int(sum(r["alerts"] for r in benign))
    seconds = float(sum(r["seconds"] for r in benign))
    hours = seconds / 3600.0
    lo, hi = poisson_interval(alerts)
    per100 = (lambda v: 100.0 * v / hours) if hours > 0 else (lambda _v: None)
    return {
        "benign_runs": len(benign),
        "alerts": alerts,
        "runs_alerted": sum(r["alerted"] for r in benign),
        "pod_seconds": round(seconds, 3),
        "pod_hours": hours,
        "per_100_pod_hours": per100(alerts),
        "per_100_pod_hours_ci95": [per100(lo), per100(hi)],
    }


def alert_latency(records: list[dict[str, Any]], window_seconds: float | None) -> dict[str, Any]:
    """Time to alert over the miner runs that alerted: seconds from the run's first window to the end of the
    window that opened the alert (when the trace has time), and pod windows up to that one."""
    alerted = [r for r in records if r["label"] == MINER and r["alerted"]]
    secs = [float(r["latency_s"]) for r in alerted if r.get("latency_s") is not None]
    wins = [r["first_alert_window"] + 1 for r in alerted if r.get("first_alert_window") is not None]
    out: dict[str, Any] = {
        "alerted_runs": len(alerted),
        "median_windows": float(np.median(wins)) if wins else None,
        "p90_windows": float(np.percentile(wins, 90)) if wins else None,
        "median_seconds": float(np.median(secs)) if secs else None,
        "p90_seconds": float(np.percentile(secs, 90)) if secs else None,
        "max_seconds": float(max(secs)) if secs else None,
    }
    if window_seconds is not None:
        out["window_seconds"] = window_seconds
    return out
