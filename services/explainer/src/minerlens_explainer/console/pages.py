"""What each console page shows, read from the stores (one pipelined Redis round trip per list) and the
explanation cache. Returns template contexts; ``routes/console.py`` renders them."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from minerlens_core.schemas.explanations import Explanation, Method
from minerlens_core.suppressions import RuleSet, Subject

from minerlens_explainer.console import charts
from minerlens_explainer.console.reference import syscall_mix
from minerlens_explainer.explaining import ExplainerUnavailable, InvalidWindow, WindowData
from minerlens_explainer.naming import PodKey
from minerlens_explainer.registry import MethodUnsupported, ModelNotFound
from minerlens_explainer.runtime import Runtime
from minerlens_explainer.store import AlertState, PodRecord
from minerlens_explainer.window_choice import NoWindow, default_window

PAGE_SIZE = 500
METHODS: tuple[Method, ...] = ("shap", "lime", "lstm-ae")
TIMELINE_POINTS = 300


async def pods(rt: Runtime, namespace: str | None, page: int) -> dict[str, Any]:
    rows, total, truncated = await rt.store.pod_rows(namespace, (page - 1) * PAGE_SIZE, PAGE_SIZE)
    out = []
    for row in rows:
        a = row.alert
        out.append({
            "namespace": row.key.namespace, "pod": row.key.name, "score": row.score, "decision": row.decision,
            "alerting": a is not None and a.status == "open", "severity": (a.severity or "Unknown") if a else "",
            "last_seen": row.last_seen, "spark": charts.sparkline(row.scores, row.threshold),
            "spark_label": f"last {len(row.scores)} scores, newest {row.scores[-1]:.3f}" if row.scores else "",
        })  # fmt: skip
    pages = max(1, math.ceil(total / PAGE_SIZE))
    return {"rows": out, "total": total, "truncated": truncated, "page": min(page, pages), "pages": pages,
            "namespace": namespace or ""}  # fmt: skip


def _severity_rank(a: AlertState) -> int:
    return {"Critical": 5, "High": 4, "Medium": 3, "Low": 2}.get(a.severity or "", 0)


async def alerts(rt: Runtime) -> dict[str, Any]:
    open_ = await rt.store.open_alerts()
    open_.sort(key=lambda ka: (-_severity_rank(ka[1]), -(ka[1].score or 0.0)))
    judged = await rt.ops.feedback(limit=1000)
    by_alert: dict[str, str] = {}
    for f in judged:  # newest first: keep the latest judgement per alert
        if f.alert_id:
            by_alert.setdefault(f.alert_id, "confirmed miner" if f.label == "miner" else "false positive")
    rows = [
        {"namespace": k.namespace, "pod": k.name, "severity": a.severity or "Unknown", "score": a.score,
         "first_seen": a.first_seen or a.opened_at, "last_seen": a.last_seen or a.updated_at, "process": a.process,
         "feedback": by_alert.get(a.alert_id, "-")}
        for k, a in open_
    ]  # fmt: skip
    return {"rows": rows}


def _timeline(verdicts: list[Any]) -> charts.Timeline | None:
    samples = []
    threshold = None
    for v in reversed(verdicts):  # oldest first
        if v.score is None:
            continue
        t = (v.end_ns or 0) / 1e9 or v.envelope.observed_at.timestamp()
        threshold = v.threshold if v.threshold is not None else threshold
        when = datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")
        samples.append((t, v.score, v.decision == "miner", f"{when} score {v.score:.3f} ({v.decision})"))
    return charts.timeline(samples, threshold)


async def alert(rt: Runtime, key: PodKey, rec: PodRecord, method: Method, is_admin: bool) -> dict[str, Any]:
    a = rec.alert
    verdicts = await rt.store.verdicts(key, TIMELINE_POINTS)
    ctx: dict[str, Any] = {
        "namespace": key.namespace, "pod": key.name, "alert": a, "node": rec.node, "last_seen": rec.last_seen,
        "image": a.image.reference if a and a.image else "", "timeline": _timeline(verdicts), "methods": METHODS,
        "method": method, "explanation": None, "explain_error": "", "mix": [], "can_act": is_admin,
        "feedback": await rt.ops.feedback(a.alert_id) if a else [], "suppressed_by": None,
    }  # fmt: skip
    if a is not None:
        rules = RuleSet(await rt.ops.suppressions())
        pod_ref = rec.latest.envelope.pod if rec.latest else None
        labels = dict(a.labels) or (dict(pod_ref.labels) if pod_ref else {})
        img, proc = a.image, a.process
        ctx["suppressed_by"] = rules.match(Subject(
            namespace=key.namespace, pod=key.name, labels=labels, image_name=img.name if img else "",
            image_tag=img.tag if img else "", image_digest=img.digest if img else "",
            comm=proc.comm if proc else "", exe=proc.exe if proc else "",
        ))  # fmt: skip
    await _explain(rt, key, rec, method, ctx)
    return ctx


async def _explain(rt: Runtime, key: PodKey, rec: PodRecord, method: Method, ctx: dict[str, Any]) -> None:
    """The explanation of the alert's window through the cache (a hit when anyone explained it before)."""
    try:
        window, source = await default_window(rt.store, key, rec)
    except NoWindow as exc:
        ctx["explain_error"] = str(exc)
        return
    ctx["window_id"], ctx["window_source"] = window.window_id, source
    try:
        model = rt.registry.pick(method, None)
    except (ModelNotFound, MethodUnsupported) as exc:
        ctx["explain_error"] = f"no loaded model explains with {method}: {exc}"
        model = None
    if model is not None:
        try:
            raw, status = await rt.explaining.explanation(model, method, WindowData.of(window), 10)
            e = Explanation.model_validate_json(raw)
            ctx.update(explanation=e, waterfall=charts.waterfall(e), cache=status)
        except (InvalidWindow, ExplainerUnavailable) as exc:
            ctx["explain_error"] = f"{method} cannot explain this window: {exc}"
    feature_model = model if model is not None and model.manifest.input_kind != "sequence" else None
    if feature_model is None:
        try:
            feature_model = rt.registry.pick("shap", None)
        except (ModelNotFound, MethodUnsupported):
            feature_model = None
    if feature_model is not None and window.feature_digest == feature_model.manifest.feature_digest:
        benign = rt.reference.medians(feature_model)
        rows = syscall_mix(feature_model.manifest.feature_names, list(window.features or []), benign)
        ctx["mix"] = charts.mix(rows)


async def suppressions(rt: Runtime) -> dict[str, Any]:
    return {"rules": await rt.ops.suppressions(), "now": datetime.now(UTC)}


async def feedback(rt: Runtime) -> dict[str, Any]:
    return {"items": await rt.ops.feedback(limit=500)}
