"""Kernel capture preconditions: root and a usable tracefs. Skip, or fail under MINERLENS_REQUIRE_KERNEL=1."""

from __future__ import annotations

import os

import pytest


def require_tracefs() -> None:
    from minerlens_collector.agent.tracefs import is_available

    if os.geteuid() == 0 and is_available():
        return
    reason = "needs root and tracefs (mount -t tracefs nodev /sys/kernel/tracing)"
    if os.environ.get("MINERLENS_REQUIRE_KERNEL", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} [MINERLENS_REQUIRE_KERNEL=1]", pytrace=False)
    pytest.skip(reason)
