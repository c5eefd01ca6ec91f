"""Writing an artifact directory atomically, the part every model family shares.

``staged_directory(out)`` yields a fresh directory next to ``out`` (same filesystem); the caller writes
the model files and the manifest into it; on success it replaces ``out`` (an existing artifact is moved
aside first, then removed), on any error it is removed and ``out`` is left as it was. ``file_hashes``
is the manifest's ``files`` map; ``library_versions`` the installed versions it records;
``manifest_for`` the manifest of a fitted, thresholded detector whose files are already written;
``write_manifest`` writes it sealed (``manifest.sha256``, ``minerlens_core.models.write_manifest``):
sign the result with ``minerlens model sign --key KEY DIR``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from minerlens_core.digests import sha256_file
from minerlens_core.features import FeatureSpec
from minerlens_core.models import SEAL_FILES, ArtifactManifest, TrainingData, spec_fields
from minerlens_core.models import write_manifest as write_sealed_manifest

from minerlens_training.detectors.base import BaseDetector
from minerlens_training.errors import ThresholdNotInferredError


@contextmanager
def staged_directory(out: Path) -> Iterator[Path]:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it 0700; an artifact is read by other users (the serving process)
        yield tmp
        swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def swap_in(new: Path, out: Path) -> None:
    """Replace ``out`` by ``new``: an existing artifact is moved aside first, then removed."""
    old: Path | None = None
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
        os.replace(out, old / "artifact")
    try:
        os.replace(new, out)
    except BaseException:
        if old is not None:
            os.replace(old / "artifact", out)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def file_hashes(directory: Path) -> dict[str, str]:
    """sha256 of every file written so far but the manifest and its seal (call before the manifest is written)."""
    return {p.name: sha256_file(p) for p in sorted(Path(directory).iterdir()) if p.name not in SEAL_FILES}


def library_versions(names: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def write_manifest(directory: Path, manifest: ArtifactManifest) -> None:
    write_sealed_manifest(Path(directory), manifest)


def require_threshold(detector: BaseDetector) -> tuple[float, float]:
    """The detector's (threshold, FPR it was tuned for); saving an artifact without them is an error."""
    if detector.threshold is None or detector.threshold_fpr is None:
        msg = f"{detector.name}: infer_threshold() before saving, the artifact records the threshold"
        raise ThresholdNotInferredError(msg)
    return detector.threshold, detector.threshold_fpr


def manifest_for(
    detector: BaseDetector,
    directory: Path,
    spec: FeatureSpec,
    training_data: TrainingData,
    libraries: Iterable[str],
    *,
    model_name: str | None,
    model_version: str,
    threshold_source: str,
    **fields: Any,
) -> ArtifactManifest:
    """The manifest of ``detector`` whose files are in ``directory`` (hashed now); ``fields`` are the
    model-kind specific ones (``input_kind``, ``sequence_length``, ``onnx_output``, ...)."""
    threshold, fpr = require_threshold(detector)
    return ArtifactManifest(
        model_name=model_name or f"minerlens-{detector.name}",
        version=model_version,
        kind=detector.kind,
        detector=detector.name,
        **spec_fields(spec),
        threshold=threshold,
        threshold_fpr=fpr,
        threshold_source=threshold_source,
        training_data=training_data,
        files=file_hashes(directory),
        libraries=library_versions(libraries),
        created_at=datetime.now(UTC),
        kind_of_score=detector.kind_of_score,
        **fields,
    )
