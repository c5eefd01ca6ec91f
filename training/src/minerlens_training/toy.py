"""Toy material for tests and benchmarks: real, verifiable model artifacts and feature windows in seconds.

* ``onnx_artifact``: an artifact around any ONNX graph (a hand-built one, a random-weights stand-in): the
  graph, an optional ``background.npz`` and the sealed manifest that hashes them. No training data
  (``manifest_sha256`` of zeros); the threshold and the other manifest fields are the caller's.
* ``spinner_share_artifact``: a tiny real sequence model (score = share of one syscall in the sequence).
* ``train_sample_artifacts``: ``xgboost`` (with ``background.npz``) and ``tree`` trained on every window of a
  lab dataset (the committed sample) with the training API, as ``minerlens train`` would.
* ``trace_windows`` / ``sample_windows``: a dataset's traces as the ``FeatureWindow`` messages the featurizer
  emits (same feature library), for scoring them.

Dev tooling only (tests, bench): no service imports training.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from minerlens_core.datasets.manifest import load_manifest
from minerlens_core.features import (
    VOCAB_SIZE,
    VOCABULARY,
    FeatureSpec,
    WindowPolicy,
    vectorize_many,
    window_sequence,
    windows_from_trace,
)
from minerlens_core.models import BACKGROUND_FILE, ONNX_FILE, ArtifactManifest, Background, TrainingData, spec_fields
from minerlens_core.schemas.envelope import Envelope, PodRef
from minerlens_core.schemas.windows import FeatureWindow, window_id
from minerlens_core.traces import read_trace
from onnx import TensorProto, helper

from minerlens_training.artifact_writer import file_hashes, write_manifest

TIME_1S = FeatureSpec.build(window=WindowPolicy.time(1.0))
"""the feature spec of 1-second time windows (what the scorer tests and bench score)"""
TIME_1S_TAG = "time:1s"
"""its window policy tag, as the featurizer writes it into ``FeatureWindow.policy``"""
NO_TRAINING_DATA = TrainingData(manifest_sha256="0" * 64)


def onnx_artifact(
    out: Path,
    model: onnx.ModelProto | bytes | None,
    *,
    spec: FeatureSpec,
    model_name: str,
    kind: str,
    detector: str,
    threshold: float,
    version: str = "0.0.1",
    background: Background | None = None,
    libraries: dict[str, str] | None = None,
    **fields: Any,
) -> Path:
    """A verifiable artifact in ``out``: ``model.onnx`` (``model``, or its bytes; None: written there already),
    ``background.npz`` when given, and the sealed manifest hashing every file. ``fields``: any other manifest
    field (``input_kind``, ``sequence_length``, ``onnx_input``, ``kind_of_score``, ...)."""
    out.mkdir(parents=True, exist_ok=True)
    if model is not None:
        (out / ONNX_FILE).write_bytes(model if isinstance(model, bytes) else model.SerializeToString())
    if background is not None:
        background.save(out / BACKGROUND_FILE)
    fields.setdefault("threshold_fpr", 0.01)
    manifest = ArtifactManifest(
        model_name=model_name,
        version=version,
        kind=kind,
        detector=detector,
        **spec_fields(spec),
        threshold=threshold,
        training_data=NO_TRAINING_DATA,
        files=file_hashes(out),
        libraries=libraries or {},
        created_at=datetime.now(UTC),
        **fields,
    )
    write_manifest(out, manifest)
    return out


def spinner_share_artifact(
    out: Path, *, spec: FeatureSpec = TIME_1S, length: int = 32, spinner: str = "sched_yield"
) -> Path:
    """A tiny real sequence model (ONNX graph): score = share of ``spinner`` among the last ``length`` ids.

    Like an embedding, it looks ids up in a table of ``VOCAB_SIZE + 1`` rows (padding included): an id out of
    range makes ONNX Runtime fail, as a real LSTM would.
    """
    table = [0.0] * (VOCAB_SIZE + 1)
    table[VOCABULARY.index(spinner)] = 1.0
    nodes = [
        helper.make_node(
            "Constant", [], ["table"], value=helper.make_tensor("table_v", TensorProto.FLOAT, [len(table)], table)
        ),
        helper.make_node("Gather", ["table", "sequence"], ["eqf"], axis=0),
        helper.make_node("ReduceMean", ["eqf"], ["p"], axes=[1], keepdims=1),
        helper.make_node("Constant", [], ["one"], value=helper.make_tensor("one_v", TensorProto.FLOAT, [], [1.0])),
        helper.make_node("Sub", ["one", "p"], ["q"]),
        helper.make_node("Concat", ["q", "p"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "spinner-share",
        [helper.make_tensor_value_info("sequence", TensorProto.INT64, [None, length])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    out.mkdir(parents=True)  # a fresh directory, as before: an existing one is an error
    return onnx_artifact(
        out,
        model,
        spec=spec,
        model_name="minerlens-seq-test",
        kind="test sequence model",
        detector="seq-test",
        threshold=0.3,
        input_kind="sequence",
        sequence_length=length,
        onnx_input="sequence",
        libraries={"onnx": onnx.__version__},
    )


def train_sample_artifacts(out: Path, sample: Path, *, spec: FeatureSpec = TIME_1S) -> dict[str, Path]:
    """``xgboost`` (with ``background.npz``) and ``tree`` trained on every window of the dataset ``sample``:
    ``{name: out/<name>-time1s}``, threshold at 1 % FPR on the benign windows."""
    from minerlens_training.artifacts import save_artifact
    from minerlens_training.datasets import load_dataset
    from minerlens_training.detectors import Detector, make_detector

    ds = load_dataset(sample, spec)
    info = TrainingData(
        manifest_sha256=ds.manifest_sha256,
        source=f"data/{sample.name}",
        windows=len(ds),
        miner_windows=int(ds.y.sum()),
        runs=len(ds.runs),
    )
    paths = {}
    for name in ("xgboost", "tree"):
        det = make_detector(name, seed=0)
        assert isinstance(det, Detector)  # feature-vector models: a sklearn pipeline and its ONNX export
        det.fit(ds.X, ds.y)
        det.infer_threshold(ds.X[ds.y == 0], 0.01)
        path = out / f"{name}-time1s"
        reference = (ds.X, ds.y) if name == "xgboost" else None
        save_artifact(det, path, spec, info, model_version="0.1.0", reference=reference)
        paths[name] = path
    return paths


def trace_windows(
    sample: Path,
    trace_name: str,
    *,
    pod_uid: str,
    namespace: str = "shop",
    pod: str | None = None,
    node: str = "node-a",
    container_id: str = "c0",
    limit: int | None = None,
    spec: FeatureSpec = TIME_1S,
    policy: str = TIME_1S_TAG,
) -> list[FeatureWindow]:
    """The windows of one trace of the dataset ``sample`` as FeatureWindow messages of the given pod."""
    trace = read_trace(sample / "traces" / f"{trace_name}.parquet")
    wins = list(windows_from_trace(trace, spec.window))[:limit]
    X = vectorize_many(wins, spec)
    ref = PodRef(uid=pod_uid, namespace=namespace, name=pod or trace_name, labels={"app": trace_name})
    base = datetime.now(UTC)
    out = []
    for w, x in zip(wins, X, strict=True):
        out.append(
            FeatureWindow(
                envelope=Envelope(
                    cluster="test",
                    node=node,
                    pod=ref,
                    container_id=container_id,
                    observed_at=base if w.end_ns is None else datetime.fromtimestamp(w.end_ns / 1e9, UTC),
                ),
                window_id=window_id(pod_uid, container_id, policy, w.index),
                policy=policy,
                index=w.index,
                start_ns=w.start_ns,
                end_ns=w.end_ns,
                count=w.count,
                complete=w.complete,
                feature_version=spec.version,
                feature_digest=spec.digest,
                features=[None if np.isnan(v) else float(v) for v in x],
                sequence=window_sequence(w).tolist(),
            )
        )
    return out


def sample_windows(sample: Path, *, spec: FeatureSpec = TIME_1S, policy: str = TIME_1S_TAG) -> list[FeatureWindow]:
    """The windows of every run of the dataset ``sample`` that ended ``ok``, each run a pod ``pod-<i>``."""
    runs = [r for r in load_manifest(sample).runs if r.status == "ok" and r.file]
    out: list[FeatureWindow] = []
    for i, run in enumerate(runs):
        out += trace_windows(sample, Path(run.file or "").stem, pod_uid=f"pod-{i}", spec=spec, policy=policy)
    return out
