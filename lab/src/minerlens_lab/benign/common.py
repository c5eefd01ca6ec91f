"""Building blocks for benign workloads' pod commands and facts."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

from minerlens_lab.workload import RunContext


def with_output(argv: Sequence[str], log: Path) -> list[str]:
    """``argv`` with stdout and stderr appended to ``log`` (the pod's own output goes to /dev/null).

    Costs one extra ``sh`` exec in the trace; used only where the program's report is a fact we keep.
    """
    return ["/bin/sh", "-c", 'exec "$@" >>"$0" 2>&1', str(log), *argv]


def shell_loop(body: str) -> list[str]:
    """A shell that runs ``body`` again and again, like a batch script working through a queue."""
    return ["/bin/sh", "-c", f"while :; do {body}; done"]


def python_module(module: str, *args: str, threads: int) -> list[str]:
    """Run a module of this package with the lab's interpreter, BLAS/OpenMP pools sized to ``threads``."""
    n = str(threads)
    env = [f"{v}={n}" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")]
    return ["env", *env, sys.executable, "-m", module, *args]


def whole_seconds(ctx: RunContext, minimum: int = 1) -> int:
    """A tool's own time limit that ends it just before the capture (so it prints its summary)."""
    return max(minimum, int(ctx.seconds - 0.5))


def port(ctx: RunContext) -> int:
    """The loopback port this run's server listens on (chosen once per run, kept in the facts)."""
    if "port" not in ctx.facts:
        ctx.facts["port"] = RunContext.free_port()
    return int(ctx.facts["port"])


def read_log(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def last_float(pattern: str, text: str) -> float | None:
    """The number captured by the last match of ``pattern`` (one group) in ``text``."""
    found = re.findall(pattern, text)
    return float(found[-1]) if found else None
