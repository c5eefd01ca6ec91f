"""The model artifacts the explainer serves, verified, and one loaded explainer per (model, method, params)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minerlens_core.errors import ArtifactError
from minerlens_core.models import ArtifactManifest, VerifiedManifest
from minerlens_core.schemas.explanations import Explanation, Method
from minerlens_core.schemas.windows import ModelRef

from minerlens_explainer.backend import ExplainerBackend, WindowExplainer

log = logging.getLogger(__name__)

FEATURE_METHODS: tuple[Method, ...] = ("shap", "lime")
SEQUENCE_METHODS: tuple[Method, ...] = ("lstm-ae",)


class ModelNotFound(LookupError):
    """No loaded model has the requested name."""


class MethodUnsupported(LookupError):
    """The requested model (or every loaded model) cannot be explained with the requested method."""


def methods_of(manifest: ArtifactManifest) -> tuple[Method, ...]:
    """Methods an artifact supports: SHAP/LIME on feature models, reconstruction error on sequence autoencoders
    (an LSTM classifier has none)."""
    if manifest.input_kind == "sequence":
        return SEQUENCE_METHODS if manifest.kind_of_score == "anomaly score" else ()
    return FEATURE_METHODS


@dataclass(frozen=True, eq=False)
class LoadedModel:
    directory: Path
    manifest: ArtifactManifest
    sha256: str
    methods: tuple[Method, ...]

    @property
    def name(self) -> str:
        return self.manifest.model_name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def ref(self) -> ModelRef:
        return ModelRef(name=self.name, version=self.version, manifest_sha256=self.sha256)


@dataclass(eq=False)
class _Slot:
    """One loaded explainer; ``lock`` serialises calls (explainers are not documented thread-safe)."""

    explainer: WindowExplainer
    lock: threading.Lock = field(default_factory=threading.Lock)

    def explain(self, x: Any, window_id: str, top: int, ids: Any = None) -> Explanation:
        with self.lock:
            return self.explainer.explain(x, window_id=window_id, top=top, ids=ids)


def load_models(directories: Sequence[Path]) -> tuple[list[LoadedModel], list[str]]:
    """Verify every artifact (hashes, feature spec); unusable ones are reported, not fatal."""
    models: list[LoadedModel] = []
    errors: list[str] = []
    for d in directories:
        try:
            v = VerifiedManifest(Path(d))
        except ArtifactError as exc:
            errors.append(str(exc))
            log.error("model artifact refused: %s", exc)
            continue
        if any(m.name == v.manifest.model_name for m in models):
            errors.append(f"{d}: a model named {v.manifest.model_name!r} is already loaded, ignored")
            continue
        models.append(LoadedModel(v.directory, v.manifest, v.sha256, methods_of(v.manifest)))
    return models, errors


class ModelRegistry:
    """Loaded models and their explainers. ``reload`` swaps both atomically (a new generation)."""

    def __init__(
        self, directories: Sequence[Path], backend: ExplainerBackend, method_params: dict[str, dict[str, Any]]
    ) -> None:
        self.directories = list(directories)
        self.backend = backend
        self.method_params = method_params
        self.models: list[LoadedModel] = []
        self.errors: list[str] = []
        self._slots: dict[tuple[int, Method], _Slot] = {}
        self._loading: dict[tuple[int, Method], asyncio.Future[_Slot]] = {}
        self.reload()

    def reload(self) -> None:
        models, errors = load_models(self.directories)
        self.models, self.errors = models, errors
        self._slots = {}
        self._loading = {}

    def params(self, method: Method) -> dict[str, Any]:
        return dict(self.method_params.get(method, {}))

    def pick(self, method: Method, name: str | None = None) -> LoadedModel:
        """The named model, else the first loaded model that supports ``method``."""
        if name is not None:
            for m in self.models:
                if m.name == name:
                    if method not in m.methods:
                        msg = f"model {name!r} does not support method {method!r} (it supports {', '.join(m.methods)})"
                        raise MethodUnsupported(msg)
                    return m
            msg = f"no model named {name!r} is loaded (loaded: {', '.join(m.name for m in self.models) or 'none'})"
            raise ModelNotFound(msg)
        for m in self.models:
            if method in m.methods:
                return m
        msg = f"no loaded model supports method {method!r}"
        raise MethodUnsupported(msg)

    async def explainer(
        self, model: LoadedModel, method: Method, executor: Executor
    ) -> Callable[[Any, str, int, Any], Explanation]:
        """The explainer of ``model`` for ``method``, loaded once (in ``executor``; loading reads the artifact)."""
        key = (id(model), method)
        slot = self._slots.get(key)
        if slot is not None:
            return slot.explain
        pending = self._loading.get(key)
        if pending is None:
            loop = asyncio.get_running_loop()
            params = self.params(method)
            backend = self.backend
            pending = loop.run_in_executor(executor, lambda: _Slot(backend.load(model.directory, method, **params)))
            self._loading[key] = pending
            try:
                slot = await asyncio.shield(pending)
            finally:
                self._loading.pop(key, None)
            if any(m is model for m in self.models):  # not reloaded meanwhile
                self._slots[key] = slot
            return slot.explain
        slot = await asyncio.shield(pending)
        return slot.explain
