"""The models directory: which artifacts are there, which verified, which were refused, what to serve.

``models_dir`` holds artifact directories (``models/xgboost-time1s/manifest.json`` ...) or is itself one.
Hidden entries (``.name.tmp``: an artifact being written atomically) are ignored. ``refresh`` rescans:
a directory whose files changed (name, size, mtime of every file) is verified and loaded again. A
refused artifact (hash mismatch, unreadable, another feature library) is logged and skipped until its
files change; whatever was serving keeps serving. Per model name the newest artifact (manifest
``created_at``) is served. ``refresh`` is blocking (hashing, ONNX session creation): call it off the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from minerlens_core.errors import ConfigurationError, MinerlensError
from minerlens_core.models import MANIFEST

from minerlens_scorer.model_set import LoadedModel, ModelSet, build_model_set, load_model

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class RepositoryEvent:
    """``loaded`` / ``refused`` / ``removed`` for one artifact directory."""

    kind: str
    directory: Path
    detail: str = ""


def fingerprint(directory: Path) -> Fingerprint:
    entries = []
    for p in sorted(directory.iterdir()):
        try:
            st = p.stat()
        except OSError:
            continue
        entries.append((p.name, st.st_size, st.st_mtime_ns))
    return tuple(entries)


def artifact_dirs(root: Path) -> list[Path]:
    """Artifact directories under ``root`` (``root`` itself when it holds a manifest)."""
    if (root / MANIFEST).is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file())


class ModelRepository:
    def __init__(
        self,
        root: Path,
        *,
        primary: str = "",
        threads: int = 1,
        reasons_top: int = 5,
        on_event: Callable[[RepositoryEvent], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.primary = primary
        self.threads = threads
        self.reasons_top = reasons_top
        self._on_event = on_event or (lambda _e: None)
        self._loaded: dict[Path, tuple[Fingerprint, LoadedModel]] = {}
        self._refused: dict[Path, tuple[Fingerprint, str]] = {}
        self.current: ModelSet | None = None

    @property
    def refused(self) -> dict[Path, str]:
        return {p: why for p, (_, why) in self._refused.items()}

    def _event(self, kind: str, directory: Path, detail: str = "") -> None:
        self._on_event(RepositoryEvent(kind, directory, detail))

    def refresh(self) -> ModelSet | None:
        """Rescan; returns a new ``ModelSet`` when what is served changed, else None."""
        present = {p: fingerprint(p) for p in artifact_dirs(self.root)}
        changed = False
        for gone in set(self._loaded) - set(present):
            del self._loaded[gone]
            changed = True
            log.info("model artifact %s removed", gone)
            self._event("removed", gone)
        for gone in set(self._refused) - set(present):
            del self._refused[gone]
        for directory, fp in present.items():
            loaded = self._loaded.get(directory)
            refused = self._refused.get(directory)
            if (loaded is not None and loaded[0] == fp) or (refused is not None and refused[0] == fp):
                continue
            try:
                model = load_model(directory, threads=self.threads, reasons_top=self.reasons_top)
            except (MinerlensError, OSError, ValueError) as exc:
                self._refused[directory] = (fp, str(exc))
                keeps = " (the previously loaded version keeps serving)" if loaded else ""
                log.error("model artifact %s refused: %s%s", directory, exc, keeps)
                self._event("refused", directory, str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - onnxruntime's own errors: a broken model.onnx
                self._refused[directory] = (fp, f"{type(exc).__name__}: {exc}")
                log.error("model artifact %s refused: cannot load model.onnx: %s", directory, exc)
                self._event("refused", directory, str(exc))
                continue
            self._refused.pop(directory, None)
            self._loaded[directory] = (fp, model)
            changed = True
            log.info("model artifact %s verified: %s %s", directory, model.name, model.version)
            self._event("loaded", directory, f"{model.name} {model.version}")
        if not changed and self.current is not None:
            return None
        try:
            new = build_model_set([m for _, m in self._loaded.values()], self.primary)
        except ConfigurationError as exc:
            if self.current is not None:
                log.error("%s; still serving %s", exc, self.current.describe())
            else:
                log.warning("%s (models dir %s)", exc, self.root)
            return None
        if self.current is not None and _same(self.current, new):
            return None
        self.current = new
        log.info("serving %s", new.describe())
        return new


def _same(a: ModelSet, b: ModelSet) -> bool:
    if a.primary is not b.primary or len(a.models) != len(b.models):
        return False
    return all(x is y for x, y in zip(a.models, b.models, strict=True))
