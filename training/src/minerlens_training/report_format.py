"""Formatting helpers of the Markdown report: values, tables, scheme names."""

from __future__ import annotations

import math
from typing import Any

from minerlens_training.splits import SCHEME_TITLES


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def scheme_label(scheme: str) -> str:
    """A split scheme as the report names it (the leaky split says that it leaks)."""
    return {
        "lofo": "LOFO",
        "impl-out": "implementation out",
        "run-kfold": "run k-fold",
        "leaky-random": "random 70/30 (leaks)",
    }.get(scheme, SCHEME_TITLES.get(scheme, scheme))
