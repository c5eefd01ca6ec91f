"""The explanation library the service calls, behind a small protocol (injected, so it is swappable).

The default backend is ``minerlens_training.explain``: ``load_explainer(artifact_dir, method, **params)``
returns a ``WindowExplainer`` whose ``explain(x, *, window_id, top)`` gives an ``Explanation``, and
``render_png(explanation)`` draws it. ``x`` is one window: a float32 feature vector (NaN = unknown)
for feature models, an int64 syscall-id sequence for sequence models (LSTM autoencoder); ``ids``
(optional, feature models) is the window's syscall-id sequence, with which the texts name the syscall
pairs behind n-gram features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from minerlens_core.schemas.explanations import Explanation, Method

WindowInput = npt.NDArray[np.float32] | npt.NDArray[np.int64]


class WindowExplainer(Protocol):
    def explain(self, x: Any, *, window_id: str = "", top: int = 10, ids: Any = None) -> Explanation: ...


class ExplainerBackend(Protocol):
    def load(self, artifact_dir: Path, method: Method, **params: Any) -> WindowExplainer: ...

    def render_png(self, explanation: Explanation) -> bytes: ...


class TrainingBackend:
    """``minerlens_training.explain`` (imported on first use: SHAP, LIME and torch load slowly)."""

    def load(self, artifact_dir: Path, method: Method, **params: Any) -> WindowExplainer:
        from minerlens_training.explain import load_explainer

        explainer: WindowExplainer = load_explainer(artifact_dir, method, **params)
        return explainer

    def render_png(self, explanation: Explanation) -> bytes:
        from minerlens_training.explain import render_png

        png: bytes = render_png(explanation)
        return png
