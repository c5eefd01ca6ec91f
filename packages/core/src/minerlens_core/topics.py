"""Kafka topic names: the one place they are defined."""

from __future__ import annotations

SYSCALLS = "minerlens.syscalls.v1"
"""Syscall batches and drop reports from the collectors, keyed by pod uid."""
WINDOWS = "minerlens.windows.v1"
"""Feature windows from the featurizer, keyed by pod uid."""
VERDICTS = "minerlens.verdicts.v1"
"""Per-window verdicts from the scorer, keyed by pod uid."""
ALERTS = "minerlens.alerts.v1"
"""OCSF Detection Findings, one open alert per pod, keyed by pod uid."""

AUDIT = "minerlens.audit.v1"
"""The responder's decisions (acted, dry-run, skipped, refused), keyed by pod uid."""

SUPPRESSIONS = "minerlens.suppressions.v1"
"""Suppression rules (compacted, keyed by rule id; a tombstone deletes one), written by the explainer, read by
the scorer. Deployments create it with ``cleanup.policy=compact`` (``COMPACTED``)."""

ALL = (SYSCALLS, WINDOWS, VERDICTS, ALERTS, AUDIT, SUPPRESSIONS)
COMPACTED = (SUPPRESSIONS,)
"""topics whose deployments must set ``cleanup.policy=compact`` (the latest record per key is the state)"""


def dead_letter(topic: str) -> str:
    """Dead-letter topic of ``topic``: undecodable or invalid messages, with the reason in headers."""
    return f"{topic}.dlq"
