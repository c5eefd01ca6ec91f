"""Test material for the scorer: real model artifacts trained on the committed sample, and the sample's
traces as the feature windows the featurizer would emit (same feature library, 1-second time windows).

The builders live in ``minerlens_training.toy`` (shared with bench/); training code is imported here (tests
only), the scorer itself never imports it.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from minerlens_core.models import MANIFEST, seal_artifact
from minerlens_core.schemas.windows import FeatureWindow
from minerlens_training import toy

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample-v1"  # the first lab's traces (format 1, no resource samples): pinned by name
SPEC = toy.TIME_1S
POLICY_TAG = toy.TIME_1S_TAG


def edit_manifest(artifact: Path, **changes: object) -> None:
    path = artifact / MANIFEST
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw, indent=2) + "\n")
    seal_artifact(artifact)  # a deliberate edit, sealed as an operator would (minerlens model seal)


def copy_artifact(src: Path, dst: Path, *, version: str, created_at: datetime | None = None) -> Path:
    shutil.copytree(src, dst)
    edit_manifest(dst, version=version, created_at=(created_at or datetime.now(UTC)).isoformat())
    return dst


def train_artifacts(out: Path) -> dict[str, Path]:
    """xgboost (with background.npz) and tree (without) on every window of the sample, 1-s time windows."""
    return toy.train_sample_artifacts(out, SAMPLE, spec=SPEC)


def sequence_artifact(out: Path, length: int = 32, spinner: str = "sched_yield") -> Path:
    """A tiny real sequence model: score = share of ``spinner`` among the last ``length`` ids."""
    return toy.spinner_share_artifact(out, spec=SPEC, length=length, spinner=spinner)


def trace_windows(trace_name: str, *, pod_uid: str, sample: Path = SAMPLE, **kwargs: Any) -> list[FeatureWindow]:
    """The windows of one sample trace (of ``sample``) as FeatureWindow messages of the given pod
    (``namespace``, ``pod``, ``node``, ``container_id``, ``limit``, ``spec``: see ``toy.trace_windows``)."""
    return toy.trace_windows(sample, trace_name, pod_uid=pod_uid, **kwargs)
