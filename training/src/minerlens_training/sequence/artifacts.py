"""Sequence-model artifact directories: ``model.onnx``, ``model.pt``, ``model.config.json``, ``manifest.json``.

* ``model.onnx``: what ONNX Runtime serves (``sequence.onnx_export``);
* ``model.pt``: the torch state dict (loaded with ``weights_only=True``: no pickled code);
* ``model.config.json``: the detector's registry name and hyperparameters, to rebuild the module;
* ``background.npz`` (optional, ``reference=(X, y)``): the benign feature-vector reference of the
  training windows (``minerlens_core.models.Background``), so an explanation of a sequence verdict can
  still say "sched_yield is 41 % of calls, benign pods: < 1 %".

The manifest records ``input_kind="sequence"``, ``sequence_length``, the ONNX input/output names and
``kind_of_score``, plus the feature spec whose window policy and cheap-syscall list cut the sequences.
Loading verifies every hash (``read_manifest``) before the state dict is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy.typing as npt
from minerlens_core.errors import ArtifactError
from minerlens_core.features import VOCAB_SIZE, FeatureSpec
from minerlens_core.models import (
    BACKGROUND_FILE,
    ONNX_FILE,
    SEQUENCE_INPUT,
    TORCH_FILE,
    ArtifactManifest,
    Background,
    TrainingData,
    read_manifest,
)

from minerlens_training.artifact_writer import manifest_for, require_threshold, staged_directory, write_manifest
from minerlens_training.detectors.sequence import SequenceDetector
from minerlens_training.sequence.onnx_export import to_onnx

CONFIG_FILE = "model.config.json"
CONFIG_FORMAT = 1
_LIBRARIES = ("minerlens-core", "minerlens-training", "numpy", "torch", "onnx", "onnxruntime")


@dataclass(frozen=True)
class LoadedSequenceArtifact:
    manifest: ArtifactManifest
    detector: SequenceDetector


def save_sequence_artifact(
    detector: SequenceDetector,
    out: Path,
    spec: FeatureSpec,
    training_data: TrainingData,
    *,
    model_name: str | None = None,
    model_version: str = "0.1.0",
    threshold_source: str = "training benign windows",
    reference: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
) -> ArtifactManifest:
    """Write the artifact directory ``out`` atomically."""
    import torch

    require_threshold(detector)
    config: dict[str, Any] = {
        "format": CONFIG_FORMAT,
        "detector": detector.name,
        "vocab_size": VOCAB_SIZE,
        "hyperparameters": detector.hyperparameters(),
    }
    with staged_directory(out) as tmp:
        (tmp / ONNX_FILE).write_bytes(to_onnx(detector).SerializeToString())
        torch.save(detector.net.state_dict(), tmp / TORCH_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if reference is not None:
            Background.from_windows(spec.names, *reference).save(tmp / BACKGROUND_FILE)
        manifest = manifest_for(
            detector,
            tmp,
            spec,
            training_data,
            _LIBRARIES,
            model_name=model_name,
            model_version=model_version,
            threshold_source=threshold_source,
            input_kind="sequence",
            sequence_length=detector.length,
            onnx_input=SEQUENCE_INPUT,
            onnx_output=detector.onnx_outputs[0],
        )
        write_manifest(tmp, manifest)
    return manifest


def load_sequence_artifact(directory: Path, expected_spec: FeatureSpec | None = None) -> LoadedSequenceArtifact:
    """The native (torch) detector of a verified sequence artifact, threshold restored from the manifest."""
    import torch

    from minerlens_training.detectors import DETECTORS

    directory = Path(directory)
    manifest = read_manifest(directory, expected_spec)
    if manifest.input_kind != "sequence":
        msg = f"{directory}: a {manifest.input_kind} model, not a sequence model (use artifacts.load_artifact)"
        raise ArtifactError(msg)
    try:
        config = json.loads((directory / CONFIG_FILE).read_text())
        cls = DETECTORS[config["detector"]]
        if config["vocab_size"] != VOCAB_SIZE or not issubclass(cls, SequenceDetector):
            msg = "vocabulary size or detector class differs"
            raise ValueError(msg)
        detector = cls(**config["hyperparameters"])
        net = detector.new_net()
        net.load_state_dict(torch.load(directory / TORCH_FILE, weights_only=True))
    except (OSError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        msg = f"{directory}: cannot rebuild the sequence model: {exc}"
        raise ArtifactError(msg) from None
    detector.set_net(net)
    detector.threshold = manifest.threshold
    detector.threshold_fpr = manifest.threshold_fpr
    return LoadedSequenceArtifact(manifest, detector)
