"""Explaining one window with one model: input checks, the versioned cache key, compute off the event loop."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from minerlens_core.errors import ArtifactError, MinerlensError
from minerlens_core.features import VOCAB_SIZE
from minerlens_core.schemas.explanations import Explanation, Method
from minerlens_core.schemas.windows import FeatureWindow

from minerlens_explainer.backend import WindowInput
from minerlens_explainer.cache import CacheStatus, SingleFlight
from minerlens_explainer.metrics import Metrics
from minerlens_explainer.registry import LoadedModel, ModelRegistry

log = logging.getLogger(__name__)


class InvalidWindow(ValueError):
    """The window cannot be explained by this model (wrong size, other feature spec, no sequence)."""


class ExplainerUnavailable(RuntimeError):
    """The model's explainer cannot be loaded (artifact unusable, library missing)."""


@dataclass(frozen=True)
class WindowData:
    """What is explained: an id (may be empty) and the window's feature vector and/or syscall sequence."""

    window_id: str = ""
    features: Sequence[float | None] | None = None
    sequence: Sequence[int] | None = None
    feature_digest: str | None = None

    @classmethod
    def of(cls, window: FeatureWindow) -> WindowData:
        return cls(window.window_id, window.features, window.sequence or None, window.feature_digest)


@dataclass(frozen=True, eq=False)
class ModelInput:
    """What the explainer is called with: ``x`` and, for feature models, the window's syscall ids."""

    x: WindowInput
    ids: npt.NDArray[np.int64] | None = None

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for part in (self.x, self.ids):
            if part is not None:
                h.update(f"{part.dtype}{part.shape}".encode())
                h.update(np.ascontiguousarray(part).tobytes())
            h.update(b"|")
        return h.hexdigest()


def _ids(sequence: Sequence[int] | None) -> npt.NDArray[np.int64] | None:
    if not sequence:
        return None
    msg = f"sequence ids must be in 0..{VOCAB_SIZE}"
    try:
        seq = np.asarray(sequence, dtype=np.int64)
    except (OverflowError, ValueError, TypeError):
        raise InvalidWindow(msg) from None
    if seq.ndim != 1 or seq.min() < 0 or seq.max() > VOCAB_SIZE:
        raise InvalidWindow(msg)
    return seq


def model_input(model: LoadedModel, w: WindowData) -> ModelInput:
    """The input of the model's explainer, or ``InvalidWindow`` saying what does not fit."""
    m = model.manifest
    if w.feature_digest is not None and w.feature_digest != m.feature_digest:
        msg = (
            f"the window was built with feature spec {w.feature_digest[:16]}, model {m.model_name!r} "
            f"{m.version} expects {m.feature_digest[:16]} (feature version {m.feature_version})"
        )
        raise InvalidWindow(msg)
    ids = _ids(w.sequence)
    if m.input_kind == "sequence":
        if ids is None:
            msg = f"model {m.model_name!r} explains syscall sequences; the window has none"
            raise InvalidWindow(msg)
        return ModelInput(ids)
    if w.features is None:
        msg = f"model {m.model_name!r} explains feature vectors; give 'features' or a window"
        raise InvalidWindow(msg)
    if len(w.features) != len(m.feature_names):
        msg = f"model {m.model_name!r} takes {len(m.feature_names)} features, got {len(w.features)}"
        raise InvalidWindow(msg)
    values = np.array(w.features, dtype=np.float64)  # None -> NaN
    if values.ndim != 1 or np.isinf(values).any():
        msg = "features must be finite numbers or null"
        raise InvalidWindow(msg)
    return ModelInput(values.astype(np.float32), ids)


class Explaining:
    def __init__(
        self, registry: ModelRegistry, flight: SingleFlight, executor: Executor, metrics: Metrics, prefix: str
    ) -> None:
        self.registry = registry
        self.flight = flight
        self.executor = executor
        self.metrics = metrics
        self.prefix = prefix
        self._png_lock = threading.Lock()  # one plot at a time: matplotlib is not documented thread-safe

    def key(self, model: LoadedModel, method: Method, window_id: str, x: ModelInput, top: int) -> str:
        """``x:<model>:<version>:<manifest sha>:<method>:<params hash>:<window id>#<content hash>``.

        The content hash makes a window sent in a request body with a known id but other values
        a different entry (it cannot poison the explanation of the stored window).
        """
        params = json.dumps({"top": top, "params": self.registry.params(method)}, sort_keys=True, default=str)
        ph = hashlib.sha256(params.encode()).hexdigest()[:12]
        return (
            f"{self.prefix}x:{model.name}:{model.version}:{model.sha256[:12]}:{method}:{ph}:"
            f"{window_id or '-'}#{x.digest[:16]}"
        )

    def purge_pattern(self, model: str | None) -> str:
        return f"{self.prefix}x:{_glob_escape(model)}:*" if model else f"{self.prefix}x:*"

    async def explanation(
        self, model: LoadedModel, method: Method, w: WindowData, top: int
    ) -> tuple[bytes, CacheStatus]:
        """The explanation as ``Explanation`` JSON bytes (what the cache holds) and where it came from."""
        x = model_input(model, w)
        key = self.key(model, method, w.window_id, x, top)
        return await self.flight.get(key, lambda: self._compute(model, method, w.window_id, x, top))

    async def png(self, model: LoadedModel, method: Method, w: WindowData, top: int) -> tuple[bytes, CacheStatus]:
        raw, _ = await self.explanation(model, method, w, top)
        explanation = Explanation.model_validate_json(raw)
        x = model_input(model, w)
        key = self.key(model, method, w.window_id, x, top) + ":png"
        return await self.flight.get(key, lambda: self._render(explanation))

    async def _compute(self, model: LoadedModel, method: Method, window_id: str, x: ModelInput, top: int) -> bytes:
        try:
            explain = await self.registry.explainer(model, method, self.executor)
        except ArtifactError as exc:
            raise ExplainerUnavailable(str(exc)) from None
        except ImportError as exc:
            msg = f"the explanation library is not installed: {exc}"
            raise ExplainerUnavailable(msg) from None
        except ValueError as exc:  # e.g. an unknown parameter in MINERLENS_EXPLAINER_METHOD_PARAMS
            msg = f"cannot load the {method} explainer of {model.name}: {exc}"
            raise ExplainerUnavailable(msg) from None
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        try:
            result = await loop.run_in_executor(self.executor, explain, x.x, window_id, top, x.ids)
        except (ValueError, MinerlensError) as exc:
            raise InvalidWindow(str(exc)) from None
        self.metrics.computed(method, model.name, time.perf_counter() - t0)
        return result.model_dump_json().encode()

    async def _render(self, explanation: Explanation) -> bytes:
        def draw() -> bytes:
            with self._png_lock:
                return self.registry.backend.render_png(explanation)

        return await asyncio.get_running_loop().run_in_executor(self.executor, draw)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
