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
* **Suppressions** (``minerlens_core.suppressions``): when k of n would open an alert whose evidence (the pod,
  its labels, the image and process of the highest-scoring window) an active rule covers, no alert is raised
  and the window is counted in ``suppressed``; an open alert that a (new) rule covers is closed with the
  rule named in its resolution. The windows are scored and published all the same.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

from minerlens_core.schemas.details import MinerlensDetails
from minerlens_core.schemas.envelope import PodRef
from minerlens_core.schemas.ocsf import ACTIVITY_CLOSE, ACTIVITY_CREATE, ACTIVITY_UPDATE, DetectionFinding
from minerlens_core.schemas.windows import Verdict
from minerlens_core.suppressions import Subject, SuppressionRule
from pydantic import ValidationError

from minerlens_scorer.alert_state import (
    MAX_MARKS,
    AlertEvent,
    AlertPolicy,
    Evidence,
    OpenAlert,
    PodState,
    Seen,
    StreamKey,
    alert_from_finding,
    alert_id,
    ms,
)

__all__ = ["AlertEngine", "AlertEvent", "AlertPolicy", "OpenAlert", "PodState", "alert_id", "stream_key"]

log = logging.getLogger(__name__)


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
        suppressor: Callable[[Subject], SuppressionRule | None] | None = None,
        on_suppressed: Callable[[str], None] | None = None,
    ) -> None:
        self.policy = policy
        self._emit = emit
        self._clock = clock
        self._suppressor = suppressor
        self._on_suppressed = on_suppressed
        """called with the rule id each time a rule withholds a window (the service's metric)"""
        self.suppressed: dict[str, int] = {}
        """scored windows, per rule id, that would have opened (or kept open) an alert a rule covers"""
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
                best = max((s for s in state.recent if s.over), key=lambda s: s.score)
                if self._covered(Subject.of(state.pod, best.verdict.envelope.container_image, best.verdict.process)):
                    return []
                return [self._open(state, v, threshold, now_ms)]
            return []
        ev = state.alert.evidence
        rule = self._covered(Subject.of(state.pod, ev.image, ev.process))
        if rule is not None:
            return [self._close(state, now_ms, f"suppressed by rule {rule.id} ({rule.owner}): {rule.reason}")]
        return self._grow(state, v, seen, new_slot, was_over, threshold, now_ms)

    def _covered(self, subject: Subject) -> SuppressionRule | None:
        """The active suppression rule covering ``subject`` (counted), or None."""
        rule = self._suppressor(subject) if self._suppressor is not None else None
        if rule is not None:
            self.suppressed[rule.id] = self.suppressed.get(rule.id, 0) + 1
            if self._on_suppressed is not None:
                self._on_suppressed(rule.id)
        return rule

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
            ms(v.start_ns),
            ms(v.end_ns),
            v.process,
            v.scope,
            v.envelope.container_image,
        )

    def _open(self, state: PodState, v: Verdict, threshold: float, now_ms: int) -> DetectionFinding:
        over = [s for s in state.recent if s.over]
        best = max(over, key=lambda s: s.score)  # first of equal scores: the earliest
        first = over[0].verdict
        alert = OpenAlert(
            alert_id=alert_id(state.uid, v.window_id),
            opened_by=v.window_id,
            created_ms=now_ms,
            first_seen_ms=ms(first.start_ns) or int(first.envelope.observed_at.timestamp() * 1000),
            last_seen_ms=ms(v.end_ns) or now_ms,
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
        alert.last_seen_ms = ms(v.end_ns) or now_ms
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
        state.alert = alert_from_finding(f, m, self.policy)
        return 1

    @staticmethod
    def _merge(state: PodState, marks: dict[StreamKey, int]) -> None:
        for k, i in marks.items():
            state.last_windows[k] = max(i, state.last_windows.get(k, i))
