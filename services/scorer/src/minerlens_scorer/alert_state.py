"""An alert's state, as ``alerting.AlertEngine`` keeps it: the policy (k of n, hysteresis, timeouts), each pod's
recent slots and replay marks (``PodState``), the open alert (``OpenAlert``) and its evidence, the events it emits
(``AlertEvent``), the deterministic alert id and the severity; and ``alert_from_finding``, the open alert a
restarted scorer rebuilds from the latest finding of a pod (``unmapped.minerlens``, ``MinerlensDetails``).
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field

from minerlens_core.schemas.details import MinerlensDetails
from minerlens_core.schemas.envelope import ContainerImage, PodRef
from minerlens_core.schemas.ocsf import DetectionFinding
from minerlens_core.schemas.windows import ModelRef, ProcessRef, Reason, Verdict
from pydantic import ValidationError

ALERT_NAMESPACE = uuid.UUID("5f0c7a43-9d1e-5b8a-a6f2-6d696e65726c")
"""uuid5 namespace of minerlens alert ids (fixed forever: ids must be stable across versions)."""

StreamKey = tuple[str, str]
"""(container id, window policy tag, + ``/p<pid>`` for process windows): a stream's windows have increasing indices."""
SlotKey = tuple[str, str, int]
"""(container id, window policy tag, window index)"""
MAX_MARKS = 256
"""replay marks kept per pod (process windows add one per process; the oldest go first)"""


def alert_id(pod_uid: str, window_id: str) -> str:
    """Deterministic alert id: the pod and the window that opened the alert."""
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{pod_uid}|{window_id}"))


def severity_of(peak: float) -> int:
    """OCSF severity_id from the peak score: 4 High >= 0.95, 3 Medium >= 0.75, else 2 Low."""
    if peak >= 0.95:
        return 4
    if peak >= 0.75:
        return 3
    return 2


@dataclass(frozen=True)
class AlertPolicy:
    k: int = 3
    n: int = 5
    resolve_m: int = 5
    resolve_factor: float = 0.5
    quiet_timeout_s: float = 300.0
    update_score_delta: float = 0.05
    max_window_ids: int = 20
    forget_after_s: float = 3600.0
    """pods without an open alert and without windows for this long are dropped from memory"""
    remember_alerted_pods: int = 100_000
    """replay marks kept for pods whose alert was closed (LRU)"""

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n:
            msg = f"need 1 <= k <= n, got k={self.k} n={self.n}"
            raise ValueError(msg)

    def __str__(self) -> str:
        return f"{self.k} of the last {self.n} windows"


@dataclass
class Seen:
    """A scored slot in a pod's recent history: its best window (highest score) and whether any was over."""

    window_id: str
    score: float
    over: bool
    verdict: Verdict
    slot: SlotKey = ("", "", -1)


@dataclass
class Evidence:
    """The window an alert shows: the highest-scoring one (its reasons, its explainer link)."""

    window_id: str
    score: float
    container_id: str
    reasons: list[Reason]
    start_ms: int | None = None
    end_ms: int | None = None
    process: ProcessRef | None = None
    scope: str = "stream"
    image: ContainerImage | None = None
    """the image of ``container_id``, when the collector knew it"""


@dataclass
class OpenAlert:
    alert_id: str
    opened_by: str
    created_ms: int
    first_seen_ms: int
    last_seen_ms: int
    window_ids: deque[str]
    windows_over: int
    windows_seen: int
    peak: float
    last_score: float
    threshold: float
    model: ModelRef
    evidence: Evidence
    sequence: int = 0
    below_run: int = 0
    emitted_peak: float = 0.0
    emitted_over: int = 0
    emitted_severity: int = 0

    @property
    def severity_id(self) -> int:
        return severity_of(self.peak)


@dataclass
class PodState:
    pod: PodRef
    node: str
    cluster: str
    recent: deque[Seen]
    last_windows: dict[StreamKey, int] = field(default_factory=dict)
    last_seen: float = 0.0
    """when the pod's last window arrived (wall clock, s)"""
    last_scored: float = 0.0
    """when the pod's last *scored* window arrived: the quiet timeout runs from here"""
    alert: OpenAlert | None = None
    alerted: bool = False

    @property
    def uid(self) -> str:
        return self.pod.uid


@dataclass(frozen=True)
class AlertEvent:
    """What happened to an alert; ``findings.FindingFactory`` turns it into OCSF."""

    activity: int
    pod: PodState
    alert: OpenAlert
    now_ms: int
    resolution: str = ""
    snapshot: bool = False
    """state to persist, not an OCSF event for consumers"""


def ms(ns: int | None) -> int | None:
    """Unix ns -> ms (None stays None)."""
    return None if ns is None else ns // 1_000_000


def _image(m: MinerlensDetails) -> ContainerImage | None:
    """The evidence's image recorded in a finding (None when absent, or when it does not fit the contract)."""
    if m.image is None:
        return None
    try:
        return ContainerImage(name=m.image.name, tag=m.image.tag, digest=m.image.digest)
    except ValidationError:
        return None


def alert_from_finding(f: DetectionFinding, m: MinerlensDetails, policy: AlertPolicy) -> OpenAlert:
    """The open alert recorded in a finding (``m``: its ``unmapped.minerlens``); ValueError when it lacks a part."""
    if m.model is None or m.score is None or m.threshold is None or m.windows_over is None or m.windows_seen is None:
        msg = "unmapped.minerlens lacks model, score, threshold or window counts"
        raise ValueError(msg)
    ev = m.evidence
    proc = ev.process if ev is not None else None
    alert = OpenAlert(
        alert_id=f.finding_info.uid,
        opened_by=m.opened_by or "",
        created_ms=f.finding_info.created_time,
        first_seen_ms=f.finding_info.first_seen_time or f.finding_info.created_time,
        last_seen_ms=f.finding_info.last_seen_time or f.time,
        window_ids=deque(m.window_ids, maxlen=policy.max_window_ids),
        windows_over=m.windows_over,
        windows_seen=m.windows_seen,
        peak=m.score,
        last_score=m.last_score or m.score,
        threshold=m.threshold,
        model=ModelRef.model_validate(m.model.model_dump()),
        evidence=Evidence(
            window_id=(ev.window_id if ev is not None and ev.window_id else m.explain_window or ""),
            score=(ev.score if ev is not None and ev.score else m.score),
            container_id=m.container_id or "",
            reasons=[Reason.model_validate(r.model_dump()) for r in m.reasons],
            start_ms=ev.start_ms if ev is not None else None,
            end_ms=ev.end_ms if ev is not None else None,
            process=ProcessRef.model_validate(proc.model_dump()) if proc is not None else None,
            scope=ev.scope if ev is not None else "stream",
            image=_image(m),
        ),
        sequence=m.sequence if m.sequence is not None else 1,
        below_run=m.below_run or 0,
    )
    last = m.last_event
    alert.emitted_peak = last.peak if last is not None and last.peak is not None else alert.peak
    alert.emitted_over = last.windows_over if last is not None and last.windows_over is not None else alert.windows_over
    alert.emitted_severity = last.severity_id if last is not None and last.severity_id is not None else f.severity_id
    return alert
