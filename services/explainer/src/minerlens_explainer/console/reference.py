"""The pod's syscall mix (``freq.<syscall>`` features of a window) against the benign reference of a model
(the median share over benign training windows, from the artifact's ``background.npz``), read once per model."""

from __future__ import annotations

import math
import threading

from minerlens_core.errors import ArtifactError
from minerlens_core.models.background import Background
from minerlens_core.models.layout import BACKGROUND_FILE

from minerlens_explainer.registry import LoadedModel

PREFIX = "freq."


class BenignReference:
    """``{model sha256: {feature: benign median}}`` of the ``freq.*`` features, loaded on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_model: dict[str, dict[str, float] | None] = {}

    def medians(self, model: LoadedModel) -> dict[str, float] | None:
        with self._lock:
            if model.sha256 not in self._by_model:
                self._by_model[model.sha256] = _load(model)
            return self._by_model[model.sha256]


def _load(model: LoadedModel) -> dict[str, float] | None:
    path = model.directory / BACKGROUND_FILE
    if not path.is_file():
        return None
    try:
        bg = Background.load(path)
    except (ArtifactError, OSError, ValueError, KeyError):
        return None
    return {
        n: float(v) for n, v in zip(bg.feature_names, bg.benign_median, strict=True)
        if n.startswith(PREFIX) and not math.isnan(float(v))
    }  # fmt: skip


def syscall_mix(
    names: list[str], values: list[float | None], benign: dict[str, float] | None, top: int = 12
) -> list[tuple[str, float, float | None]]:
    """The window's ``top`` syscalls by share, and the benign syscalls it lacks most, with both shares."""
    window = {n[len(PREFIX) :]: v for n, v in zip(names, values, strict=False) if n.startswith(PREFIX) and v}
    ref = {n[len(PREFIX) :]: v for n, v in (benign or {}).items()}
    keys = sorted(
        set(window) | {k for k, v in ref.items() if v > 0}, key=lambda k: -max(window.get(k, 0.0), ref.get(k, 0.0))
    )
    return [(k, window.get(k, 0.0), ref.get(k) if benign is not None else None) for k in keys[:top]]
