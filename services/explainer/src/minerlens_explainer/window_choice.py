"""Which stored window of a pod to explain when the caller does not name one."""

from __future__ import annotations

from typing import Literal

from minerlens_core.schemas.windows import FeatureWindow

from minerlens_explainer.naming import PodKey
from minerlens_explainer.store import PodRecord, PodStore

DefaultSource = Literal["alert", "highest_score", "latest"]


class NoWindow(LookupError):
    """The pod has no stored window to explain."""


async def default_window(store: PodStore, pod: PodKey, record: PodRecord) -> tuple[FeatureWindow, DefaultSource]:
    """The window that opened the pod's open alert; else the stored window whose verdict scored highest
    (the newest among equals); else the newest stored window."""
    alert = record.alert
    if alert is not None and alert.status == "open":
        candidates = ([alert.trigger_window_id] if alert.trigger_window_id else []) + alert.window_ids[::-1]
        for wid in candidates:
            w = await store.window(pod, wid)
            if w is not None:
                return w, "alert"
    ids = await store.window_ids(pod)  # newest first
    if not ids:
        msg = f"pod {pod} has no stored windows (they expire {store.ttl_s} s after its last message)"
        raise NoWindow(msg)
    scores = await store.verdict_scores(pod, ids)
    source: DefaultSource = "latest"
    best = ids[0]
    if scores:
        rank = {wid: i for i, wid in enumerate(ids)}
        best = max(scores, key=lambda wid: (scores[wid], -rank[wid]))
        source = "highest_score"
    w = await store.window(pod, best)
    if w is None:
        msg = f"window {best} of pod {pod} expired"
        raise NoWindow(msg)
    return w, source
