"""``render_png``: an explanation as a horizontal bar chart (matplotlib Agg, no pyplot global state)."""

from __future__ import annotations

import io
import textwrap

from minerlens_core.schemas.explanations import Explanation

MINER_COLOUR = "#c0392b"
BENIGN_COLOUR = "#2471a3"


def render_png(explanation: Explanation, *, width: float = 9.0, dpi: int = 100) -> bytes:
    """PNG bytes: one bar per contribution (largest on top), red toward miner, blue toward benign.

    Bars are labelled with the feature's label and value; the title has the model, score and decision.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    items = list(explanation.contributions)
    height = 1.6 + 0.42 * max(1, len(items))
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    labels = [_bar_label(c.label or c.feature, c.value) for c in items][::-1]
    values = [c.contribution if c.direction == "toward_miner" else -abs(c.contribution) for c in items][::-1]
    colours = [MINER_COLOUR if v > 0 else BENIGN_COLOUR for v in values]
    positions = list(range(len(items)))
    ax.barh(positions, values, color=colours)
    ax.set_yticks(positions, labels=labels, fontsize=8)
    ax.axvline(0.0, color="#555555", linewidth=0.8)
    unit = str(explanation.params.get("unit", "contribution"))
    ax.set_xlabel(f"{unit}  (right: toward miner, left: toward benign)", fontsize=8)
    decision = "" if explanation.miner is None else (" - miner" if explanation.miner else " - not a miner")
    model = explanation.model
    title = f"{model.name} {model.version}: score {explanation.score:.3f}{decision} ({explanation.method})"
    if explanation.window_id:
        title += f"\nwindow {_middle(explanation.window_id, 90)}"
    ax.set_title(title, fontsize=9)
    if not items:
        ax.text(0.5, 0.5, "no contribution", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _bar_label(label: str, value: float | None) -> str:
    shown = "" if value is None else f" = {value:.3g}"
    return textwrap.shorten(label, width=48, placeholder="...") + shown


def _middle(text: str, width: int) -> str:
    """``text`` shortened in the middle (window ids carry 64-hex container ids)."""
    if len(text) <= width:
        return text
    keep = (width - 3) // 2
    return f"{text[:keep]}...{text[-keep:]}"
