"""The LSTM-autoencoder explainer against an ONNX graph with the sequence-model contract.

``build_toy_autoencoder`` writes a verified artifact whose ``model.onnx`` has the contract of the real
LSTM autoencoder (input ``sequence`` int64 ``(n, L)`` padded with ``VOCAB_SIZE``; outputs ``score``
``(n,)`` = e / (e + 1) with e the mean error over real positions, and ``position_error`` ``(n, L)``, 0 at
padding). Its "reconstruction" always predicts a fixed benign distribution (read/write/epoll_wait), so
the error of a position is -log p(its syscall): calls a benign pod would make cost little, others a lot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from minerlens_core.errors import ArtifactError, ArtifactIntegrityError
from minerlens_core.features import VOCAB_SIZE, FeatureSpec, index_of
from minerlens_core.models import (
    ONNX_FILE,
    Background,
)
from minerlens_core.models.onnx_model import OnnxModel
from minerlens_training.explain import load_explainer, render_png
from minerlens_training.explain.autoencoder import LstmAeExplainer
from minerlens_training.toy import onnx_artifact
from onnx import TensorProto, helper

LENGTH = 64
PAD = VOCAB_SIZE
FAVOURED = {"read": 0.4, "write": 0.4, "epoll_wait": 0.19}


def _toy_graph() -> onnx.ModelProto:
    p = np.full(VOCAB_SIZE + 1, 0.01 / (VOCAB_SIZE + 1 - len(FAVOURED)), dtype=np.float64)
    for name, q in FAVOURED.items():
        p[index_of(name)] = q
    neg_logp = (-np.log(p / p.sum())).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["neg_logp", "sequence"], ["raw_error"], axis=0),
        helper.make_node("Equal", ["sequence", "pad"], ["is_pad"]),
        helper.make_node("Not", ["is_pad"], ["is_real"]),
        helper.make_node("Cast", ["is_real"], ["real"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["raw_error", "real"], ["position_error"]),
        helper.make_node("ReduceSum", ["position_error", "axis1"], ["error_sum"], keepdims=0),
        helper.make_node("ReduceSum", ["real", "axis1"], ["real_count"], keepdims=0),
        helper.make_node("Max", ["real_count", "one"], ["denominator"]),
        helper.make_node("Div", ["error_sum", "denominator"], ["mean_error"]),
        helper.make_node("Add", ["mean_error", "one"], ["mean_plus_one"]),
        helper.make_node("Div", ["mean_error", "mean_plus_one"], ["score"]),
    ]
    inits = [
        helper.make_tensor("neg_logp", TensorProto.FLOAT, [VOCAB_SIZE + 1], neg_logp.tolist()),
        helper.make_tensor("pad", TensorProto.INT64, [], [PAD]),
        helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
    ]
    graph = helper.make_graph(
        nodes,
        "toy-lstm-ae",
        [helper.make_tensor_value_info("sequence", TensorProto.INT64, ["n", LENGTH])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["n"]),
            helper.make_tensor_value_info("position_error", TensorProto.FLOAT, ["n", LENGTH]),
        ],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_toy_autoencoder(out: Path, spec: FeatureSpec | None = None, background: Background | None = None) -> Path:
    """A verified sequence-model artifact with the LSTM-AE ONNX contract (see the module docstring)."""
    out.mkdir(parents=True)
    return onnx_artifact(
        out,
        _toy_graph(),
        spec=spec or FeatureSpec.default(),
        model_name="toy-lstm-ae",
        kind="lstm-autoencoder",
        detector="lstm-ae",
        threshold=0.75,
        background=background,
        input_kind="sequence",
        sequence_length=LENGTH,
        onnx_input="sequence",
        onnx_output="score",
        kind_of_score="anomaly score",
    )


def _ids(*names: str) -> np.ndarray:
    return np.array([index_of(n) for n in names], dtype=np.int16)


def _benign_background(spec: FeatureSpec) -> Background:
    X = np.zeros((4, spec.dim), np.float32)
    names = list(spec.names)
    X[:, names.index("freq_nocheap.read")] = 0.5
    X[:, names.index("freq_nocheap.futex")] = [0.0, 0.01, 0.02, 0.0]
    return Background.from_windows(spec.names, X, np.zeros(4, np.int64))


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = FeatureSpec.default()
    return build_toy_autoencoder(tmp_path_factory.mktemp("toy-ae") / "model", spec, _benign_background(spec))


def test_lstm_ae_puts_the_unusual_syscall_first(toy: Path) -> None:
    explainer = load_explainer(toy, "lstm-ae")
    assert isinstance(explainer, LstmAeExplainer)
    rng = np.random.default_rng(0)
    seq = rng.permutation(_ids(*(["futex"] * 24 + ["read"] * 12 + ["write"] * 12)))
    e = explainer.explain(seq, window_id="w", top=5)
    assert e.method == "lstm-ae"
    assert e.score == pytest.approx(float(OnnxModel(toy).score(explainer.pad(seq))[0]), abs=1e-6)
    assert e.miner is (e.score > 0.75)
    assert e.miner
    names = [c.feature for c in e.contributions]
    assert names[0] == "freq_nocheap.futex"
    assert set(names) == {"freq_nocheap.futex", "freq_nocheap.read", "freq_nocheap.write"}
    assert all(c.direction == "toward_miner" and c.contribution > 0 for c in e.contributions)
    assert sum(c.contribution for c in e.contributions) == pytest.approx(1.0)
    top = e.contributions[0]
    assert top.value == pytest.approx(0.5)
    assert top.baseline == pytest.approx(0.005)
    assert "reconstruction error" in top.text
    assert "it is 24 of the 48 calls (50%; benign pods: 0-2%)" in top.text, top.text
    assert "benign pods" in top.text
    assert e.params["calls"] == 48
    assert e.params["sequence_length"] == LENGTH
    assert 0 <= int(e.params["hot_span_start"]) < int(e.params["hot_span_end"]) <= 48
    assert "densest in calls" in e.summary
    assert "anomalous" in e.summary
    assert render_png(e).startswith(b"\x89PNG")


def test_lstm_ae_positions_and_padding(toy: Path) -> None:
    explainer = load_explainer(toy, "lstm-ae")
    assert isinstance(explainer, LstmAeExplainer)
    # the unusual calls sit together in the middle: the hot span must cover them
    seq = _ids(*(["read", "write"] * 10 + ["sched_yield"] * 10 + ["read", "write"] * 10))
    ids, err, per = explainer.attributions(seq)
    assert ids.shape == (LENGTH,)
    assert (ids[: LENGTH - len(seq)] == PAD).all()
    assert (err[ids == PAD] == 0).all()
    assert per[index_of("sched_yield")] > 0.7  # 10 positions at -log(0.01/360) vs 40 at -log(0.4)
    lo, hi, part = explainer.hot_span(ids, err)
    assert lo >= 20
    assert hi <= 30
    assert part > 0.5
    benign = explainer.explain(_ids(*(["read", "write"] * 20)))
    assert benign.miner is False
    scores = explainer.score([seq, _ids("read"), np.zeros(0, np.int16)])
    assert scores[2] == 0.0
    assert scores[0] > scores[1]
    long = explainer.explain(np.tile(_ids("futex", "read"), 100))  # longer than L: the tail is kept
    assert long.params["calls"] == LENGTH
    with pytest.raises(ValueError, match="syscall ids"):
        explainer.explain(np.array([-3, 1]))


def test_lstm_ae_refuses_feature_models_and_tampering(toy: Path, tmp_path: Path) -> None:
    import shutil

    with pytest.raises(ArtifactError, match="use lstm-ae"):
        load_explainer(toy, "shap")
    copy = tmp_path / "ae"
    shutil.copytree(toy, copy)
    (copy / ONNX_FILE).write_bytes((copy / ONNX_FILE).read_bytes() + b"\0")
    with pytest.raises(ArtifactIntegrityError, match="modified"):
        load_explainer(copy, "lstm-ae")
    bare = build_toy_autoencoder(tmp_path / "bare")
    e = load_explainer(bare, "lstm-ae").explain(_ids("futex", "read", "futex"))
    assert e.contributions[0].baseline is None
    assert "benign pods" not in e.contributions[0].text
