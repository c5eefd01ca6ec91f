"""Kernel capture preconditions: root and a usable tracefs, a loadable BPF program. Skip, or fail under
MINERLENS_REQUIRE_KERNEL=1."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


def require_tracefs() -> None:
    from minerlens_collector.agent.tracefs import is_available

    if os.geteuid() == 0 and is_available():
        return
    reason = "needs root and tracefs (mount -t tracefs nodev /sys/kernel/tracing)"
    if os.environ.get("MINERLENS_REQUIRE_KERNEL", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} [MINERLENS_REQUIRE_KERNEL=1]", pytrace=False)
    pytest.skip(reason)


BPF_DIR = Path(__file__).resolve().parents[1] / "services" / "collector" / "bpf"
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _ebpf_unavailable() -> str | None:
    from minerlens_collector.agent.ebpf import probe

    if os.geteuid() != 0:
        return "needs root (or CAP_BPF + CAP_PERFMON) to load BPF programs"
    toolchain = subprocess.run(["make", "-s", "-C", str(BPF_DIR), "check"], capture_output=True, text=True)
    if toolchain.returncode == 0:  # cheap when already built (bootstrap builds it); a build error fails the test
        subprocess.run(["make", "-s", "-C", str(BPF_DIR)], check=True, capture_output=True)
    reason = probe(CGROUP_ROOT)  # as full root: the kernel can load it at all
    return f"{reason} ({toolchain.stdout.strip()})" if reason and toolchain.returncode else reason


def require_ebpf() -> None:
    """The BPF object builds and the kernel loads it; skip, or fail under MINERLENS_REQUIRE_KERNEL=1."""
    reason = _ebpf_unavailable()
    if reason is None:
        return
    if os.environ.get("MINERLENS_REQUIRE_KERNEL", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"eBPF source unusable: {reason} [MINERLENS_REQUIRE_KERNEL=1]", pytrace=False)
    pytest.skip(f"eBPF source unusable: {reason}")
