"""The models a scorer serves: verified ONNX artifacts, their benign backgrounds, and which one decides.

A ``ModelSet`` is immutable. Hot reload builds a new one and swaps it in with one assignment, so a batch
is always scored by one consistent set of models.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from minerlens_core.errors import ArtifactError, ConfigurationError
from minerlens_core.models import BACKGROUND_FILE, Background
from minerlens_core.models.onnx_model import OnnxModel

from minerlens_scorer.reasons import ReasonRanker

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """One verified artifact, ready to score; ``ranker`` is None without ``background.npz``."""

    model: OnnxModel
    ranker: ReasonRanker | None
    note: str = ""

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def version(self) -> str:
        return self.model.manifest.version

    @property
    def digest(self) -> str:
        return self.model.spec.digest

    @property
    def directory(self) -> Path:
        return self.model.directory

    @property
    def gate(self) -> str:
        """The decision gate the model was calibrated with (``none`` | ``network``)."""
        return self.model.manifest.gate

    @property
    def res_column(self) -> int | None:
        """Index of ``res.has`` in the model's features (None: a spec without resource context)."""
        names = self.model.spec.names
        return names.index("res.has") if "res.has" in names else None


def load_model(directory: Path, *, threads: int = 1, reasons_top: int = 5) -> LoadedModel:
    """Verify (every file's sha256, feature spec) and load one artifact; raise ``ArtifactError`` if refused."""
    model = OnnxModel(Path(directory), threads=threads)
    if BACKGROUND_FILE not in model.manifest.files:
        return LoadedModel(model, None, f"{model.name} {model.manifest.version} has no {BACKGROUND_FILE}")
    background = Background.load(model.directory / BACKGROUND_FILE)
    try:
        ranker = ReasonRanker(
            background,
            model.manifest.feature_names,
            top=reasons_top,
            buckets=model.spec.params.buckets,
            params=model.spec.params,
        )
    except ValueError as exc:
        msg = f"{model.directory / BACKGROUND_FILE}: {exc}"
        raise ArtifactError(msg) from None
    return LoadedModel(model, ranker)


PREFERRED_PRIMARY = ("minerlens-xgboost",)
"""Without a configured primary: these (the shipped default first), else the first feature model by name."""


@dataclass(frozen=True, eq=False)
class ModelSet:
    """The served models (one per model name) and the primary (deciding) one."""

    models: tuple[LoadedModel, ...]
    primary: LoadedModel

    @property
    def others(self) -> tuple[LoadedModel, ...]:
        return tuple(m for m in self.models if m is not self.primary)

    def describe(self) -> str:
        return ", ".join(
            f"{m.name} {m.version}{' (primary)' if m is self.primary else ''} [{m.directory.name}]" for m in self.models
        )


def newest_per_name(loaded: Iterable[LoadedModel]) -> list[LoadedModel]:
    """Per ``model_name`` the artifact created last (manifest ``created_at``; then version, directory)."""
    best: dict[str, LoadedModel] = {}
    for m in loaded:
        key = (m.model.manifest.created_at, m.version, str(m.directory))
        cur = best.get(m.name)
        if cur is None or key > (cur.model.manifest.created_at, cur.version, str(cur.directory)):
            best[m.name] = m
    return sorted(best.values(), key=lambda m: m.name)


def build_model_set(loaded: Iterable[LoadedModel], primary: str = "") -> ModelSet:
    """Choose the served models and the primary; ``ConfigurationError`` when there is none or it is missing."""
    models = newest_per_name(loaded)
    if not models:
        msg = "no verified model artifact to serve"
        raise ConfigurationError(msg)
    if primary:
        chosen = next((m for m in models if m.name == primary), None)
        if chosen is None:
            msg = f"primary model {primary!r} not among the artifacts ({', '.join(m.name for m in models)})"
            raise ConfigurationError(msg)
    else:
        rank = {name: i for i, name in enumerate(PREFERRED_PRIMARY)}
        chosen = sorted(models, key=lambda m: (rank.get(m.name, len(rank)), m.model.input_kind != "features", m.name))[
            0
        ]
    return ModelSet(tuple(models), chosen)
