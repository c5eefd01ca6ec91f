"""What happened to the alerts handed to an output since its last flush."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DeliveryReport:
    """Outcome of one flush. ``ref`` is whatever the caller attached to an alert (the Kafka record).

    * ``rejected``: the SIEM refused these for good (retrying would not help): dead-letter them.
    * ``lost``: not delivered for a transient reason (SIEM down, retries exhausted, queue overflow):
      the caller must not commit them and should try again later.
    """

    delivered: int = 0
    rejected: list[tuple[object, str]] = field(default_factory=list)
    lost: list[tuple[object, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.lost

    def merge(self, other: DeliveryReport) -> None:
        self.delivered += other.delivered
        self.rejected += other.rejected
        self.lost += other.lost
