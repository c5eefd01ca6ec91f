"""Test material for the scorer: real model artifacts trained on the committed sample, and the sample's
traces as the feature windows the featurizer would emit (same feature library, 1-second time windows).

Training code is imported here (tests only); the scorer itself never imports it.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
from minerlens_core.digests import sha256_file
from minerlens_core.features import FeatureSpec, WindowPolicy, vectorize_many, window_sequence, windows_from_trace
from minerlens_core.models import (
    BACKGROUND_FILE,
    MANIFEST,
    ONNX_FILE,
    ArtifactManifest,
    Background,
    TrainingData,
    seal_artifact,
    spec_fields,
    write_manifest,
)
from minerlens_core.schemas.envelope import Envelope, PodRef
from minerlens_core.schemas.windows import FeatureWindow, window_id
from minerlens_core.traces import read_trace
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample-v1"  # the first lab's traces (format 1, no resource samples): pinned by name
SPEC = FeatureSpec.build(window=WindowPolicy.time(1.0))
POLICY_TAG = "time:1s"


def add_background(artifact: Path, background: Background) -> None:
    """Write ``background.npz`` into an artifact and record its sha256 in the manifest (what training does)."""
    background.save(artifact / BACKGROUND_FILE)
    path = artifact / MANIFEST
    raw = json.loads(path.read_text())
    raw["files"][BACKGROUND_FILE] = sha256_file(artifact / BACKGROUND_FILE)
    path.write_text(json.dumps(raw, indent=2) + "\n")
    seal_artifact(artifact)


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


def _writes_background(save_artifact: object) -> bool:
    import inspect

    return "reference" in inspect.signature(save_artifact).parameters  # type: ignore[arg-type]


def train_artifacts(out: Path) -> dict[str, Path]:
    """xgboost (with background.npz) and tree (without) on every window of the sample, 1-s time windows."""
    from minerlens_training.artifacts import save_artifact
    from minerlens_training.datasets import load_dataset
    from minerlens_training.detectors import make_detector

    ds = load_dataset(SAMPLE, SPEC)
    info = TrainingData(
        manifest_sha256=ds.manifest_sha256,
        source="data/sample-v1",
        windows=len(ds),
        miner_windows=int(ds.y.sum()),
        runs=len(ds.runs),
    )
    paths = {}
    for name in ("xgboost", "tree"):
        det = make_detector(name, seed=0).fit(ds.X, ds.y)
        det.infer_threshold(ds.X[ds.y == 0], 0.01)
        path = out / f"{name}-time1s"
        extra = {"reference": (ds.X, ds.y)} if name == "xgboost" and _writes_background(save_artifact) else {}
        save_artifact(det, path, SPEC, info, model_version="0.1.0", **extra)
        if name == "xgboost" and not (path / BACKGROUND_FILE).exists():
            importance = det.pipeline.named_steps["model"].feature_importances_
            add_background(path, Background.from_windows(SPEC.names, ds.X, ds.y, importance))
        paths[name] = path
    return paths


def sequence_artifact(out: Path, length: int = 32, spinner: str = "sched_yield") -> Path:
    """A tiny real sequence model (ONNX graph): score = share of ``spinner`` among the last ``length`` ids.

    Like an embedding, it looks ids up in a table of ``VOCAB_SIZE + 1`` rows (padding included): an id out of
    range makes ONNX Runtime fail, as a real LSTM would.
    """
    from minerlens_core.features import VOCAB_SIZE, VOCABULARY

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
    out.mkdir(parents=True)
    (out / ONNX_FILE).write_bytes(model.SerializeToString())
    manifest = ArtifactManifest(
        model_name="minerlens-seq-test",
        version="0.0.1",
        kind="test sequence model",
        detector="seq-test",
        **spec_fields(SPEC),
        threshold=0.3,
        threshold_fpr=0.01,
        input_kind="sequence",
        sequence_length=length,
        onnx_input="sequence",
        training_data=TrainingData(manifest_sha256="0" * 64),
        files={ONNX_FILE: sha256_file(out / ONNX_FILE)},
        libraries={"onnx": onnx.__version__},
        created_at=datetime.now(UTC),
    )
    write_manifest(out, manifest)
    return out


def trace_windows(
    trace_name: str,
    *,
    pod_uid: str,
    namespace: str = "shop",
    pod: str | None = None,
    node: str = "node-a",
    container_id: str = "c0",
    limit: int | None = None,
    spec: FeatureSpec = SPEC,
    sample: Path = SAMPLE,
) -> list[FeatureWindow]:
    """The windows of one sample trace (of ``sample``) as FeatureWindow messages of the given pod."""
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
                window_id=window_id(pod_uid, container_id, POLICY_TAG, w.index),
                policy=POLICY_TAG,
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
