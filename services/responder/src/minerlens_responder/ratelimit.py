"""Rate limits: how often the responder may act, cluster-wide and per alert.

* global: at most ``global_per_minute`` alerts acted on in any sliding 60 s;
* per alert: once acted on, an alert's later events wait ``per_alert_cooldown_s`` unless the alert
  escalates (higher severity than when it was acted on); an action done (or planned) for an alert is
  never repeated for it.

In memory, bounded (least recently used alerts are forgotten first): run one responder replica.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from minerlens_responder.policy import Action, RateLimits

WINDOW_S = 60.0


@dataclass(slots=True)
class _AlertState:
    acted_at: float
    severity_id: int
    actions: set[Action] = field(default_factory=set)


class RateLimiter:
    def __init__(self, limits: RateLimits, *, max_alerts: int = 10_000) -> None:
        self.limits = limits
        self._alerts: OrderedDict[str, _AlertState] = OrderedDict()
        self._acted: deque[float] = deque()
        self._max_alerts = max_alerts

    def refusal(self, key: str, alert_id: str, severity_id: int, now: float) -> str | None:
        """Why acting on this alert (state ``key``) now would exceed a limit, or None."""
        state = self._alerts.get(key)
        cooldown = self.limits.per_alert_cooldown_s
        if state is not None and now - state.acted_at < cooldown and severity_id <= state.severity_id:
            return (
                f"alert {alert_id} was acted on {now - state.acted_at:.0f}s ago "
                f"(per-alert cooldown {cooldown:.0f}s, no escalation)"
            )
        self._expire(now)
        if len(self._acted) >= self.limits.global_per_minute:
            return f"global limit reached: {len(self._acted)} alerts acted on in the last minute"
        return None

    def already(self, key: str) -> set[Action]:
        """Actions already done or planned for this alert (state ``key``)."""
        state = self._alerts.get(key)
        return set(state.actions) if state else set()

    def record(self, key: str, severity_id: int, actions: set[Action], now: float) -> None:
        """Count one alert (state ``key``) acted on at ``now`` with these (successful or planned) actions."""
        state = self._alerts.pop(key, None) or _AlertState(now, severity_id)
        state.acted_at = now
        state.severity_id = max(state.severity_id, severity_id)
        state.actions |= actions
        self._alerts[key] = state
        while len(self._alerts) > self._max_alerts:
            self._alerts.popitem(last=False)
        self._acted.append(now)

    def _expire(self, now: float) -> None:
        while self._acted and now - self._acted[0] >= WINDOW_S:
            self._acted.popleft()
