"""What a lab workload is, and what the lab runner gives it.

A workload runs *inside* an emulated pod (``command``), optionally driven by a load generator
*outside* the pod (``drive``), for ``ctx.seconds``. ``prepare`` runs before capture (builds binaries,
initialises data directories) and ``check`` after it (facts to record: accepted shares, requests
served...). Workloads never start anything that ``cleanup`` (or the pod) does not stop.
"""

from __future__ import annotations

import socket
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Label = Literal["miner", "benign"]

CI_SUBSET = "ci"
"""the subset CI runs (``minerlens lab run --subset ci``): short, one or two workloads per kind"""


@dataclass
class RunContext:
    """Per-run facts and resources handed to a workload."""

    workdir: Path
    """a fresh directory for this run (data dirs, sockets, logs); removed by the runner afterwards"""
    cache_dir: Path
    """kept across runs: compiled binaries, downloaded-once inputs"""
    seconds: float
    pool: tuple[str, int] | None = None
    """the loopback stratum pool (host, port) the lab started, for miners"""
    threads: int = 2
    repeat: int = 1
    """which run of this workload this is (1-based): workloads vary their threads/load with it"""
    cpu_seconds: float | None = None
    """CPU time the pod used during the capture: set by the runner before ``check`` (None: not measured)"""
    facts: dict[str, Any] = field(default_factory=dict)
    """what ``drive``/``check`` measured, written to the manifest"""

    @staticmethod
    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])


class Workload(ABC):
    """One entry of the catalog. Subclasses set the class attributes and implement ``command``."""

    name: str
    family: str
    label: Label
    variant: str = ""
    description: str = ""
    requires: tuple[str, ...] = ()
    """executables that must be on PATH, or ``python:MODULE`` for an importable Python module
    (checked before the run; missing -> reported as skipped, the rest of the run goes on)"""
    cpu_limit: float | None = None
    """pod CPU quota in cores (cgroup cfs quota), None = unlimited"""
    implementation: str = ""
    """for miners, the miner implementation (``xmrig-6.16.0``, ``minerlens-c``...); copied into the manifest"""
    repeats: int | None = None
    """runs of this workload in a full lab run (None: the runner's default)"""
    seconds: float | None = None
    """capture length of this workload in a full lab run (None: the runner's default for its label)"""
    imitates: str = ""
    """for benign look-alikes (hard negatives): what about a miner this workload imitates (in the facts)"""
    subsets: tuple[str, ...] = ()
    """named subsets this workload belongs to (``ci``: the short representative set CI runs)"""

    def fetch(self, cache_dir: Path) -> None:  # noqa: B027 - optional hook
        """Download-once inputs into ``cache_dir`` (sources, pinned binaries): network and time that belong to the
        install step (``minerlens lab fetch``), not to a run or a timed test. Idempotent; ``prepare`` may call it."""

    def prepare(self, ctx: RunContext) -> None:  # noqa: B027 - optional hook
        """Before capture: build, initialise. Raise to mark the workload failed."""

    @abstractmethod
    def command(self, ctx: RunContext) -> list[str]:
        """argv of the program(s) that run inside the pod."""

    def drive(self, ctx: RunContext, stop: threading.Event) -> None:  # noqa: B027 - optional hook
        """Load generator, run in a thread outside the pod while capturing; return when ``stop`` is set."""

    def check(self, ctx: RunContext) -> None:  # noqa: B027 - optional hook
        """After capture: record facts in ``ctx.facts``; raise if the run was not what it claims."""

    def cleanup(self, ctx: RunContext) -> None:  # noqa: B027 - optional hook
        """Stop anything started outside the pod (the pod's own processes are killed by the runner)."""
