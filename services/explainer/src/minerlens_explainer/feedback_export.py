"""Operator feedback as labelled windows: one JSON line per window an operator judged, from what Redis still
holds (``minerlens explainer feedback-export``).

A line is ``{"label": 1|0, "judgement": "miner"|"false_positive", "feedback_id", "alert_id", "by", "at",
"reason", "window": <FeatureWindow>}``: every window of a judged alert (its windows over the threshold and the
one that opened it) gets the alert's label (1: a confirmed miner, 0: a false positive). The judged windows are
pinned with the judgement when it is given (``OperatorStore.add_feedback``), so they outlive the pod store's
``WINDOW_TTL_S``; a window that was already gone from the pod store then (or judgements stored before pinning
existed, whose windows expired) is counted as ``missing``. Raw syscalls are not in the store (only the window's
features and its syscall-id sequence tail).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from minerlens_core.schemas.windows import FeatureWindow

from minerlens_explainer.naming import PodKey
from minerlens_explainer.operator_store import MAX_FEEDBACK_LISTED, OperatorStore
from minerlens_explainer.store import PodStore, parse_stored


@dataclass(frozen=True)
class ExportCounts:
    feedback: int
    windows: int
    missing: int
    by_label: dict[int, int]


async def export_feedback(ops: OperatorStore, pods: PodStore, out: Path) -> ExportCounts:
    """Write the labelled windows of every stored judgement (newest first) to ``out`` (JSON lines)."""
    items = await ops.feedback(limit=MAX_FEEDBACK_LISTED)
    written = missing = 0
    by_label: dict[int, int] = {}
    seen: set[str] = set()
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w") as f:
        for fb in items:
            label = 1 if fb.label == "miner" else 0
            key = PodKey(fb.namespace, fb.pod)
            ids = fb.judged_window_ids
            pinned = await ops.pinned_windows(fb.id)
            for wid in ids:
                if wid in seen:  # judged twice: the newest judgement wins
                    continue
                seen.add(wid)
                window = parse_stored(FeatureWindow, pinned[wid]) if wid in pinned else await pods.window(key, wid)
                if window is None:
                    missing += 1
                    continue
                line = {"label": label, "judgement": fb.label, "feedback_id": fb.id, "alert_id": fb.alert_id,
                        "by": fb.by.name, "at": fb.at.isoformat(), "reason": fb.reason,
                        "window": json.loads(window.model_dump_json())}  # fmt: skip
                f.write(json.dumps(line, separators=(",", ":")) + "\n")
                written += 1
                by_label[label] = by_label.get(label, 0) + 1
    tmp.replace(out)
    return ExportCounts(len(items), written, missing, by_label)
