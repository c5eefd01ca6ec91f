"""A live, per-pod view of what the pipeline decided: verdicts and alerts read back from Kafka.

``minerlens watch`` prints it as a table (the demo's screen); ``PipelineView`` is plain data so tests
and scripts can check the same numbers (``summary()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.live import Live
from rich.table import Table

from minerlens_core import topics
from minerlens_core.schemas.ocsf import DetectionFinding, decode_finding
from minerlens_core.schemas.windows import Verdict, decode_verdict
from minerlens_core.settings import KafkaSettings
from minerlens_core.terminal import make_console


@dataclass
class PodRow:
    display: str
    windows: int = 0
    miner_windows: int = 0
    insufficient: int = 0
    last_score: float | None = None
    max_score: float = 0.0
    last_decision: str = ""
    model: str = ""
    lost_events: int = 0
    alert: DetectionFinding | None = None
    alert_events: int = 0
    first_alert_at: float | None = None
    process: str = ""
    """the process of the pod's highest-scoring window (its own window, or the busiest of a pod window)"""
    miner_slots: set[tuple[str, str, int]] = field(default_factory=set)

    @property
    def alert_state(self) -> str:
        if self.alert is None:
            return "-"
        return {1: "OPEN", 2: "OPEN (updated)", 3: "resolved"}.get(self.alert.activity_id, "?")


COLUMNS = ("pod", "windows", "miner", "no data", "last score", "max", "process", "alert", "severity")
"""``minerlens watch``'s table (with --json: one object per pod with these keys, spaces as ``_``)"""


@dataclass
class PipelineView:
    """Per-pod rows. With ``not_before_ns``, windows that ended earlier and alerts last seen earlier are
    counted in ``older`` instead of shown (a previous run's pods, flushed late by a restarted featurizer)."""

    pods: dict[str, PodRow] = field(default_factory=dict)
    undecodable: int = 0
    started: float = field(default_factory=time.monotonic)
    not_before_ns: int | None = None
    older: int = 0

    def _too_old(self, end_ns: int | None) -> bool:
        if self.not_before_ns is None or end_ns is None or end_ns >= self.not_before_ns:
            return False
        self.older += 1
        return True

    def _row(self, uid: str, display: str) -> PodRow:
        row = self.pods.get(uid)
        if row is None:
            row = self.pods[uid] = PodRow(display)
        elif display and not display.startswith("pod:"):
            row.display = display
        return row

    def add_verdict(self, v: Verdict) -> None:
        if self._too_old(v.end_ns):
            return
        pod = v.envelope.pod
        row = self._row(pod.uid if pod else f"node:{v.envelope.node}", pod.display if pod else v.envelope.node)
        stream = v.scope == "stream"
        row.windows += stream  # a slot's process windows are not more windows of the pod
        row.lost_events += v.lost_events if stream else 0
        row.model = f"{v.model.name} {v.model.version}"
        if v.decision == "insufficient_data":
            row.insufficient += stream
            return
        if v.decision == "miner":
            row.miner_slots.add((v.envelope.container_id, v.policy, v.index))
            row.miner_windows = len(row.miner_slots)
        if stream:
            row.last_decision = v.decision
        if v.score is not None:
            if stream:
                row.last_score = v.score
            if v.score >= row.max_score and v.process is not None:
                row.process = f"{v.process.comm or '?'} ({v.process.pid})"
            row.max_score = max(row.max_score, v.score)

    def add_alert(self, f: DetectionFinding) -> None:
        last = f.finding_info.last_seen_time
        if self._too_old(None if last is None else last * 1_000_000):
            return
        res = f.pod
        m = f.unmapped.get("minerlens", {})
        uid = (res.uid if res else "") or str(m.get("pod_uid", "?"))
        display = f"{res.namespace}/{res.name}" if res and res.namespace and res.name else f"pod:{uid}"
        row = self._row(uid, display)
        row.alert = f
        row.alert_events += 1
        proc = m.get("process")
        if isinstance(proc, dict) and proc.get("pid"):
            row.process = f"{proc.get('comm') or '?'} ({proc['pid']})"
        if row.first_alert_at is None:
            row.first_alert_at = time.monotonic() - self.started

    def rows(self) -> list[list[object]]:
        """The table's rows (``COLUMNS``) with plain values: numbers unformatted, None when unknown."""
        return [
            [r.display, r.windows, r.miner_windows, r.insufficient, r.last_score, r.max_score, r.process or None,
             r.alert_state if r.alert is not None else None, r.alert.severity if r.alert else None]
            for r in sorted(self.pods.values(), key=lambda r: r.display)
        ]  # fmt: skip

    def table(self) -> Table:
        t = Table(*COLUMNS, title="minerlens")
        for row in sorted(self.pods.values(), key=lambda r: r.display):
            sev = row.alert.severity if row.alert else ""
            style = "bold red" if row.alert is not None and row.alert.activity_id != 3 else ""
            t.add_row(
                row.display, str(row.windows), str(row.miner_windows), str(row.insufficient),
                "-" if row.last_score is None else f"{row.last_score:.3f}", f"{row.max_score:.3f}",
                row.process or "-", row.alert_state, sev, style=style,
            )  # fmt: skip
        return t

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"undecodable": self.undecodable, "older_not_shown": self.older, "pods": {}}
        for uid, r in self.pods.items():
            m = r.alert.unmapped.get("minerlens", {}) if r.alert else {}
            out["pods"][r.display] = {
                "uid": uid,
                "windows": r.windows,
                "miner_windows": r.miner_windows,
                "insufficient_data": r.insufficient,
                "max_score": r.max_score,
                "process": r.process,
                "process_detail": m.get("process"),
                "alert": r.alert_state,
                "alert_id": r.alert.alert_id if r.alert else None,
                "severity": r.alert.severity if r.alert else None,
                "reasons": [x.get("text") or x.get("feature") for x in m.get("reasons", [])],
                "explain_path": m.get("explain_path"),
                "first_alert_s": None if r.first_alert_at is None else round(r.first_alert_at, 1),
            }
        return out

    def alert_report(self) -> list[str]:
        lines = []
        for r in sorted(self.pods.values(), key=lambda r: r.display):
            if r.alert is None:
                continue
            m = r.alert.unmapped.get("minerlens", {})
            lines.append(f"ALERT {r.alert_state} {r.display}: {r.alert.finding_info.title} ({r.alert.severity})")
            lines.append(f"  {r.alert.message}")
            for reason in m.get("reasons", [])[:5]:
                lines.append(f"  - {reason.get('text') or reason.get('feature')}")
            if m.get("explain_path"):
                lines.append(f"  why: GET {m['explain_path']}")
        return lines


async def watch_pipeline(
    kafka: KafkaSettings, seconds: float, *, from_beginning: bool = False, console: Console | None = None,
    verdicts_topic: str = topics.VERDICTS, alerts_topic: str = topics.ALERTS, max_age_s: float | None = None,
    live: bool = True,
) -> PipelineView:  # fmt: skip
    """Consume verdicts and alerts for ``seconds`` and render the per-pod table live (unless not ``live``).

    ``max_age_s``: leave out windows that ended (and alerts last seen) more than this long before the start.
    """
    from minerlens_core.kafka import make_consumer

    view = PipelineView()
    if max_age_s is not None:
        view.not_before_ns = time.time_ns() - round(max_age_s * 1e9)
    consumer = make_consumer(
        kafka, verdicts_topic, alerts_topic, group_id=f"minerlens-watch-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest" if from_beginning else "latest",
    )  # fmt: skip
    await consumer.start()
    deadline = time.monotonic() + seconds
    try:
        with contextlib.ExitStack() as stack:
            screen = None
            if live:
                screen = stack.enter_context(
                    Live(view.table(), console=console or wide_console(), refresh_per_second=2, transient=False)
                )
            while time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500, max_records=2000)
                for tp, records in batches.items():
                    for rec in records:
                        try:
                            if tp.topic == alerts_topic:
                                view.add_alert(decode_finding(rec.value or b""))
                            else:
                                view.add_verdict(decode_verdict(rec.value or b""))
                        except (ValidationError, ValueError):
                            view.undecodable += 1
                if screen is not None:
                    screen.update(view.table())
    finally:
        await consumer.stop()
    return view


def wide_console() -> Console:
    """A console that does not squeeze pod names when output is not a terminal (logs, CI, pipes)."""
    return make_console(width=140)


def run_watch(
    kafka: KafkaSettings,
    seconds: float,
    from_beginning: bool = False,
    max_age_s: float | None = None,
    *,
    live: bool = True,
) -> PipelineView:
    return asyncio.run(watch_pipeline(kafka, seconds, from_beginning=from_beginning, max_age_s=max_age_s, live=live))
