"""Inline SVG geometry, computed on the server: the templates only place numbers (and autoescaped text).

Every function is pure and returns plain data (coordinates as formatted numbers), so no text from a
window, a pod or a process ever reaches an SVG attribute unescaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from minerlens_core.schemas.explanations import Explanation


def _f(x: float) -> str:
    return f"{x:.1f}"


@dataclass(frozen=True)
class Spark:
    points: str
    """``x,y x,y ...`` for a ``<polyline>``"""
    threshold_y: str | None
    last_x: str
    last_y: str
    width: int
    height: int


def sparkline(scores: Sequence[float], threshold: float | None, width: int = 120, height: int = 24) -> Spark | None:
    """Scores in [0, 1], oldest first; None without any."""
    if not scores:
        return None
    n = len(scores)
    step = (width - 4) / max(n - 1, 1)
    pts = [(2 + i * step, height - 2 - s * (height - 4)) for i, s in enumerate(scores)]
    ty = None if threshold is None else _f(height - 2 - min(max(threshold, 0.0), 1.0) * (height - 4))
    return Spark(" ".join(f"{_f(x)},{_f(y)}" for x, y in pts), ty, _f(pts[-1][0]), _f(pts[-1][1]), width, height)


@dataclass(frozen=True)
class Dot:
    x: str
    y: str
    over: bool
    label: str


@dataclass(frozen=True)
class Timeline:
    points: str
    dots: list[Dot]
    threshold_y: str | None
    width: int
    height: int


def timeline(
    samples: Sequence[tuple[float, float, bool, str]], threshold: float | None, width: int = 720, height: int = 160
) -> Timeline | None:
    """``(time s, score, over?, label)`` oldest first -> a line with one dot per verdict."""
    if not samples:
        return None
    t0, t1 = samples[0][0], samples[-1][0]
    span = max(t1 - t0, 1e-9)
    left, right, top, bottom = 36, 8, 8, 20

    def xy(t: float, s: float) -> tuple[float, float]:
        x = left + (t - t0) / span * (width - left - right) if len(samples) > 1 else width / 2
        return x, top + (1 - s) * (height - top - bottom)

    pts = [xy(t, s) for t, s, _, _ in samples]
    dots = [Dot(_f(x), _f(y), over, label) for (x, y), (_, _, over, label) in zip(pts, samples, strict=True)]
    ty = None if threshold is None else _f(xy(t0, min(max(threshold, 0.0), 1.0))[1])
    return Timeline(" ".join(f"{_f(x)},{_f(y)}" for x, y in pts), dots, ty, width, height)


@dataclass(frozen=True)
class Bar:
    label: str
    detail: str
    value: str
    x: str
    y: str
    w: str
    toward_miner: bool


@dataclass(frozen=True)
class Waterfall:
    bars: list[Bar]
    width: int
    height: int
    zero_x: str | None
    unit: str
    start_label: str
    end_label: str


_ROW = 22


def waterfall(e: Explanation, width: int = 720, label_w: int = 260) -> Waterfall:
    """SHAP/LIME: each contribution moves a running sum from the base value (log-odds); LSTM-AE: each
    syscall's share of the reconstruction error, from 0."""
    contributions = list(e.contributions)
    base = e.base_value if (e.method != "lstm-ae" and e.base_value is not None) else 0.0
    running = [base]
    for c in contributions:
        running.append(running[-1] + c.contribution)
    lo, hi = min([*running, 0.0]), max([*running, 0.0])
    if math.isclose(lo, hi):
        hi = lo + 1.0
    plot = width - label_w - 70

    def x(v: float) -> float:
        return label_w + (v - lo) / (hi - lo) * plot

    bars = []
    for i, c in enumerate(contributions):
        a, b = running[i], running[i + 1]
        bars.append(Bar(
            label=c.label or c.feature, detail=c.text, value=f"{c.contribution:+.3f}", x=_f(x(min(a, b))),
            y=str(8 + i * _ROW), w=_f(max(abs(x(b) - x(a)), 1.0)), toward_miner=c.contribution > 0,
        ))  # fmt: skip
    unit = str(e.params.get("unit", "share of error" if e.method == "lstm-ae" else "log-odds"))
    end = running[-1]
    return Waterfall(bars, width, 16 + len(bars) * _ROW, _f(x(0.0)) if lo <= 0 <= hi else None, unit,
                     f"{base:.3f}", f"{end:.3f}")  # fmt: skip


@dataclass(frozen=True)
class MixRow:
    syscall: str
    window: str
    benign: str
    window_w: str
    benign_w: str


def mix(rows: Sequence[tuple[str, float, float | None]], width: int = 300) -> list[MixRow]:
    """``(syscall, share in the window, benign median share)`` -> bar widths on one scale."""
    top = max([w for _, w, _ in rows] + [b or 0.0 for _, _, b in rows] + [1e-9])
    return [
        MixRow(name, f"{w:.1%}", "n/a" if b is None else f"{b:.1%}", _f(w / top * width), _f((b or 0.0) / top * width))
        for name, w, b in rows
    ]
