"""The alert policy: per pod, verdicts in, OCSF Detection Finding events (Create / Update / Close) out.

* **Open**: ``k`` of the pod's last ``n`` scored slots are over the primary model's threshold. A slot is one
  window index of one container: its stream window and its per-process windows (the same slot restricted to
  one process) count once, over when any of them is, with the highest score; the alert's evidence is the
  window that scored highest, so a miner hidden in a busy pod is named by its own process window. The alert
  id is deterministic: ``uuid5(pod uid + "|" + id of the window that completed k of n)``.
* **One open alert per pod**: while it is open, windows are added to it; an ``Update`` is emitted when it
  changes materially (severity changes, peak score rises by ``update_score_delta``, or the number of
  windows over threshold doubles since the last event).
* **Resolve** (hysteresis): after ``resolve_m`` consecutive scored windows below the lower threshold
  (``resolve_factor x threshold``), or when the pod sent no scored window for ``quiet_timeout_s``
  (gone, or too quiet to judge: ``insufficient_data`` only): ``Close``.
* **Idempotent**: per stream (container, window policy, and process for process windows) the highest window
  index seen is remembered; a window at or below it is a replay (featurizer restart, Kafka redelivery) and
  changes nothing.
* **Restart**: every finding carries the alert's full state (``unmapped.minerlens``: counts, replay marks
  ``last_windows``...). ``drain_state`` returns, per pod whose alert changed, the latest such finding (the
  event itself, or a *snapshot* when a window changed the alert without an event); the service keeps them on
  a compacted state topic, and a restarted scorer ``restore``s from the latest one per pod: the open alert
  continues with the same id and counts, and replayed windows are recognised.
* ``insufficient_data`` verdicts neither count as over nor as below: they only mark the window as seen.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from minerlens_core.schemas.details import MinerlensDetails
from minerlens_core.schemas.envelope import PodRef
from minerlens_core.schemas.ocsf import ACTIVITY_CLOSE, ACTIVITY_CREATE, ACTIVITY_UPDATE, DetectionFinding
from minerlens_core.schemas.windows import ModelRef, ProcessRef, Reason, Verdict
from pydantic import ValidationError

log = logging.getLogger(__name__)

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


def _ms(ns: int | None) -> int | None:
    return None if ns is None else ns // 1_000_000


def _pod_of(v: Verdict) -> PodRef:
    return v.envelope.pod or PodRef(uid=f"node-{v.envelope.node}"[:64].lower())


def stream_key(v: Verdict) -> StreamKey:
    """The replay key of a verdict's window: its stream, and its process for process windows."""
    if v.scope == "process" and v.process is not None:
        return (v.envelope.container_id, f"{v.policy}/p{v.process.pid}")
    return (v.envelope.container_id, v.policy)


class AlertEngine:
    """Per-pod alert state machine. ``emit`` receives every ``AlertEvent`` and returns what to publish."""

    def __init__(
        self,
        policy: AlertPolicy,
        emit: Callable[[AlertEvent], DetectionFinding],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self._emit = emit
        self._clock = clock
        self.pods: dict[str, PodState] = {}
        self._retired: OrderedDict[str, dict[StreamKey, int]] = OrderedDict()
        self._state_out: dict[str, DetectionFinding | None] = {}
        self.replays = 0

    # ---- queries -------------------------------------------------------------------------------------
    @property
    def open_alerts(self) -> dict[str, OpenAlert]:
        return {uid: p.alert for uid, p in self.pods.items() if p.alert is not None}

    # ---- input ---------------------------------------------------------------------------------------
    def observe_many(self, verdicts: Iterable[Verdict], now: float | None = None) -> list[DetectionFinding]:
        out: list[DetectionFinding] = []
        for v in verdicts:
            out += self.observe(v, now)
        return out

    def observe(self, v: Verdict, now: float | None = None) -> list[DetectionFinding]:
        """Feed one verdict; returns the findings to publish (usually none)."""
        t = self._clock() if now is None else now
        pod = _pod_of(v)
        state = self._state(pod, v)
        key = stream_key(v)
        last = state.last_windows.get(key)
        if last is not None and v.index <= last:
            self.replays += 1
            return []
        state.last_windows.pop(key, None)
        state.last_windows[key] = v.index
        while len(state.last_windows) > MAX_MARKS:
            del state.last_windows[next(iter(state.last_windows))]
        state.last_seen = t
        if state.alert is not None:
            self._state_out.setdefault(state.uid, None)
        state.pod = pod if (pod.name or not state.pod.name) else state.pod
        state.node, state.cluster = v.envelope.node, v.envelope.cluster
        if v.decision == "insufficient_data" or v.score is None:
            return []
        state.last_scored = t
        threshold = v.threshold if v.threshold is not None else 0.5
        over = v.decision == "miner"
        slot = (v.envelope.container_id, v.policy, v.index)
        seen = next((s for s in state.recent if s.slot == slot), None)
        was_over = seen is not None and seen.over
        if seen is None:
            seen = Seen(v.window_id, v.score, over, v, slot)
            state.recent.append(seen)
            new_slot = True
        else:  # another window of a slot already counted (a process window after its stream window)
            new_slot = False
            seen.over = seen.over or over
            if v.score > seen.score:
                seen.window_id, seen.score, seen.verdict = v.window_id, v.score, v
        now_ms = int(t * 1000)
        if state.alert is None:
            if sum(s.over for s in state.recent) >= self.policy.k:
                return [self._open(state, v, threshold, now_ms)]
            return []
        return self._grow(state, v, seen, new_slot, was_over, threshold, now_ms)

    def expire(self, now: float | None = None) -> list[DetectionFinding]:
        """Close alerts of pods that went quiet; forget idle pods without an alert."""
        t = self._clock() if now is None else now
        out: list[DetectionFinding] = []
        for uid, state in list(self.pods.items()):
            quiet = t - state.last_scored
            if state.alert is not None and quiet >= self.policy.quiet_timeout_s:
                limit = self.policy.quiet_timeout_s
                why = f"no scored window from the pod for {quiet:.0f} s (quiet timeout {limit:.0f} s)"
                out.append(self._close(state, int(t * 1000), why))
            elif state.alert is None and t - state.last_seen >= self.policy.forget_after_s:
                del self.pods[uid]
                if state.alerted:
                    self._retire(uid, state.last_windows)
        return out

    def drain_state(self, now: float | None = None) -> list[DetectionFinding]:
        """The latest state of every alert that changed since the last call (for the state topic)."""
        t = self._clock() if now is None else now
        out: list[DetectionFinding] = []
        for uid, finding in self._state_out.items():
            if finding is None:
                state = self.pods.get(uid)
                if state is None or state.alert is None:
                    continue
                finding = self._emit(AlertEvent(ACTIVITY_UPDATE, state, state.alert, int(t * 1000), snapshot=True))
            out.append(finding)
        self._state_out.clear()
        return out

    # ---- transitions ---------------------------------------------------------------------------------
    def _state(self, pod: PodRef, v: Verdict) -> PodState:
        state = self.pods.get(pod.uid)
        if state is None:
            marks = self._retired.pop(pod.uid, None)
            state = PodState(
                pod=pod,
                node=v.envelope.node,
                cluster=v.envelope.cluster,
                recent=deque(maxlen=self.policy.n),
                last_windows=dict(marks or {}),
                alerted=marks is not None,
            )
            self.pods[pod.uid] = state
        return state

    def _retire(self, uid: str, marks: dict[StreamKey, int]) -> None:
        self._retired[uid] = dict(marks)
        self._retired.move_to_end(uid)
        while len(self._retired) > self.policy.remember_alerted_pods:
            self._retired.popitem(last=False)

    @staticmethod
    def _evidence(s: Seen) -> Evidence:
        v = s.verdict
        return Evidence(
            s.window_id,
            s.score,
            v.envelope.container_id,
            list(v.reasons),
            _ms(v.start_ns),
            _ms(v.end_ns),
            v.process,
            v.scope,
        )

    def _open(self, state: PodState, v: Verdict, threshold: float, now_ms: int) -> DetectionFinding:
        over = [s for s in state.recent if s.over]
        best = max(over, key=lambda s: s.score)  # first of equal scores: the earliest
        first = over[0].verdict
        alert = OpenAlert(
            alert_id=alert_id(state.uid, v.window_id),
            opened_by=v.window_id,
            created_ms=now_ms,
            first_seen_ms=_ms(first.start_ns) or int(first.envelope.observed_at.timestamp() * 1000),
            last_seen_ms=_ms(v.end_ns) or now_ms,
            window_ids=deque((s.window_id for s in over), maxlen=self.policy.max_window_ids),
            windows_over=len(over),
            windows_seen=len(state.recent),
            peak=best.score,
            last_score=v.score or 0.0,
            threshold=threshold,
            model=v.model,
            evidence=self._evidence(best),
        )
        state.alert, state.alerted = alert, True
        return self._event(ACTIVITY_CREATE, state, now_ms)

    def _grow(
        self, state: PodState, v: Verdict, seen: Seen, new_slot: bool, was_over: bool, threshold: float, now_ms: int
    ) -> list[DetectionFinding]:
        """A window joined the open alert's pod: a new slot, or another window of a slot already counted."""
        alert = state.alert
        assert alert is not None
        score = seen.score
        alert.last_score = score
        alert.last_seen_ms = _ms(v.end_ns) or now_ms
        alert.model, alert.threshold = v.model, threshold
        if new_slot:
            alert.windows_seen += 1
        if seen.over and not was_over:
            alert.windows_over += 1
            alert.window_ids.append(seen.window_id)
        if seen.over and score > alert.peak:
            alert.peak = score
            alert.evidence = self._evidence(seen)
        if score < self.policy.resolve_factor * threshold:
            alert.below_run += 1 if new_slot else 0
        else:
            alert.below_run = 0
        if alert.below_run >= self.policy.resolve_m:
            why = (
                f"{alert.below_run} consecutive windows scored below {self.policy.resolve_factor * threshold:.3f} "
                f"({self.policy.resolve_factor:g} x threshold)"
            )
            return [self._close(state, now_ms, why)]
        material = (
            alert.severity_id != alert.emitted_severity
            or alert.peak >= alert.emitted_peak + self.policy.update_score_delta
            or alert.windows_over >= 2 * alert.emitted_over
        )
        return [self._event(ACTIVITY_UPDATE, state, now_ms)] if material else []

    def _close(self, state: PodState, now_ms: int, why: str) -> DetectionFinding:
        finding = self._event(ACTIVITY_CLOSE, state, now_ms, why)
        state.alert = None
        state.recent.clear()
        return finding

    def _event(self, activity: int, state: PodState, now_ms: int, resolution: str = "") -> DetectionFinding:
        alert = state.alert
        assert alert is not None
        alert.sequence += 1
        alert.emitted_peak, alert.emitted_over, alert.emitted_severity = (
            alert.peak,
            alert.windows_over,
            alert.severity_id,
        )
        finding = self._emit(AlertEvent(activity, state, alert, now_ms, resolution))
        self._state_out[state.uid] = finding
        return finding

    # ---- restart -------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything (before ``restore`` from the alerts topic after a failure)."""
        self.pods.clear()
        self._retired.clear()
        self._state_out.clear()

    def restore(self, latest: Iterable[DetectionFinding], now: float | None = None) -> int:
        """Rebuild open alerts and replay marks from the latest finding of each pod; returns open alerts."""
        t = self._clock() if now is None else now
        opened = 0
        for finding in latest:
            try:
                opened += self._restore_one(finding, t)
            except (KeyError, TypeError, ValueError, ValidationError) as exc:
                log.warning("alert %s: cannot restore (%s), skipped", finding.finding_info.uid, exc)
        return opened

    def _restore_one(self, f: DetectionFinding, t: float) -> int:
        if not isinstance(f.unmapped.get("minerlens"), dict):
            return 0
        m = MinerlensDetails.of(f)
        if not m.pod_uid:
            msg = "no pod_uid in unmapped.minerlens"
            raise ValueError(msg)
        uid = m.pod_uid
        marks: dict[StreamKey, int] = {(w.container_id, w.policy): w.index for w in m.last_windows}
        state = self.pods.get(uid)
        if f.activity_id == ACTIVITY_CLOSE:
            if state is not None and state.alert is not None and state.alert.alert_id != f.finding_info.uid:
                return 0  # a newer alert of this pod is open in memory
            if state is None:
                prior = self._retired.get(uid, {})
                self._retire(uid, {k: max(v, prior.get(k, v)) for k, v in {**prior, **marks}.items()})
            else:
                state.alert = None
                self._merge(state, marks)
                state.alerted = True
            return 0
        pod = PodRef(uid=uid, namespace=m.namespace or "", name=m.pod or "", labels=dict(m.labels))
        if state is None:
            state = PodState(
                pod=pod, node=m.node or "", cluster=m.cluster or "default", recent=deque(maxlen=self.policy.n)
            )
            self.pods[uid] = state
        self._merge(state, marks)
        state.alerted, state.last_seen, state.last_scored = True, t, t
        if state.alert is not None and state.alert.alert_id == f.finding_info.uid:
            return 1
        if (
            m.model is None
            or m.score is None
            or m.threshold is None
            or m.windows_over is None
            or m.windows_seen is None
        ):
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
            window_ids=deque(m.window_ids, maxlen=self.policy.max_window_ids),
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
            ),
            sequence=m.sequence if m.sequence is not None else 1,
            below_run=m.below_run or 0,
        )
        last = m.last_event
        alert.emitted_peak = last.peak if last is not None and last.peak is not None else alert.peak
        alert.emitted_over = (
            last.windows_over if last is not None and last.windows_over is not None else alert.windows_over
        )
        alert.emitted_severity = (
            last.severity_id if last is not None and last.severity_id is not None else f.severity_id
        )
        state.alert = alert
        return 1

    @staticmethod
    def _merge(state: PodState, marks: dict[StreamKey, int]) -> None:
        for k, i in marks.items():
            state.last_windows[k] = max(i, state.last_windows.get(k, i))
