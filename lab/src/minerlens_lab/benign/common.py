"""Building blocks for benign workloads' pod commands and facts."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from minerlens_lab.workload import RunContext

T = TypeVar("T")

LOOKALIKE_REPEATS = 3
"""runs of each look-alike (hard negative) in a full lab run: one more than the default, for hold-out"""


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


def per_repeat(ctx: RunContext, choices: Sequence[T]) -> T:
    """The choice for this run: repeats cycle through ``choices`` (run 1 takes the first)."""
    return choices[(ctx.repeat - 1) % len(choices)]


def setting(ctx: RunContext, key: str, choices: Sequence[T]) -> T:
    """This run's value of a per-repeat setting (connections, clients, period...), recorded in the facts.
    Called where the pod's command is made (so the setting is known before the run) and again where it
    is used (the same value)."""
    value = per_repeat(ctx, choices)
    ctx.facts[key] = value
    return value


def repeat_threads(ctx: RunContext) -> int:
    """Threads/workers for this run: all of ``ctx.threads`` on run 1, one on run 2, twice as many
    (oversubscribed) on run 3, and again (1, 2, 4 when ``ctx.threads`` is 1); recorded in the facts as
    ``threads``."""
    t = ctx.threads
    n = per_repeat(ctx, (t, 1, 2 * t) if t > 1 else (1, 2, 4))
    ctx.facts["threads"] = n
    return n


def progress_lines(path: Path) -> list[list[float]]:
    """The ``"<seconds> <count> [<count>...]"`` lines a lab program appends to its log every 2 s."""
    out: list[list[float]] = []
    for line in read_log(path).splitlines():
        try:
            out.append([float(x) for x in line.split()])
        except ValueError:
            continue
    return out


def last_progress(ctx: RunContext, log: Path, what: str) -> int:
    """The last operation count of a progress log, recorded as the fact ``what``; raises when the
    program reported no progress at all."""
    lines = [line for line in progress_lines(log) if len(line) >= 2]
    total = int(lines[-1][1]) if lines else 0
    ctx.facts[what] = total
    ctx.facts["progress_reports"] = len(lines)
    if total <= 0:
        msg = f"no {what.replace('_', ' ')} reported in {log.name}: {read_log(log).strip()[-300:]!r}"
        raise RuntimeError(msg)
    return total
