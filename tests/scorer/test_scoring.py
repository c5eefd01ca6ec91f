"""The data plane with real artifacts trained on the committed sample: verdicts, batching, insufficient
data, feature-spec mismatch, inline reasons, several models, sequence models."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from minerlens_core.features import FeatureSpec, WindowPolicy
from minerlens_core.schemas.windows import FeatureWindow, Verdict, decode_verdict
from minerlens_scorer.model_set import ModelSet, build_model_set, load_model
from minerlens_scorer.scoring import SPEC_MISMATCH, VECTOR_LENGTH, Rejected, Scorer

from tests.scorer.helpers import edit_manifest, sequence_artifact, trace_windows

MINER = "miner-randomx-2t-r1"
BENIGN = "numpy-mlp-r1"
QUIET = "sysbench-cpu-r1"  # 2 syscalls per second


def _verdicts(outcomes: list[Verdict | Rejected]) -> list[Verdict]:
    assert all(isinstance(o, Verdict) for o in outcomes), [o for o in outcomes if isinstance(o, Rejected)]
    return [o for o in outcomes if isinstance(o, Verdict)]


def test_miner_and_benign_windows(xgb_set: ModelSet) -> None:
    scorer = Scorer(xgb_set)
    miner = _verdicts(scorer.score(trace_windows(MINER, pod_uid="m1")))
    benign = _verdicts(scorer.score(trace_windows(BENIGN, pod_uid="b1")))
    scored = [v for v in miner if v.decision != "insufficient_data"]
    assert len(scored) >= 0.9 * len(miner)
    assert sum(v.decision == "miner" for v in scored) >= 0.9 * len(scored)
    assert all(v.decision == "benign" for v in benign)
    primary = xgb_set.primary.model
    for v in miner + benign:
        assert v.model == primary.ref
        assert v.model.version == "0.1.0"
        assert len(v.model.manifest_sha256) == 64
        assert v.threshold == primary.threshold
        if v.decision != "insufficient_data":
            assert v.score is not None
            assert 0.0 <= v.score <= 1.0
            assert (v.score > v.threshold) == (v.decision == "miner")
            assert [s.model for s in v.scores] == [primary.ref]
        assert decode_verdict(v.model_dump_json()) == v


def test_verdict_carries_the_window_identity(xgb_set: ModelSet) -> None:
    w = trace_windows(MINER, pod_uid="m1", limit=3)
    verdicts = _verdicts(Scorer(xgb_set).score(w))
    for window, v in zip(w, verdicts, strict=True):
        assert (v.window_id, v.policy, v.index, v.start_ns, v.end_ns, v.count) == (
            window.window_id,
            window.policy,
            window.index,
            window.start_ns,
            window.end_ns,
            window.count,
        )
        assert v.envelope.pod == window.envelope.pod
        assert v.envelope.node == window.envelope.node
        assert v.envelope.container_id == window.envelope.container_id
        assert v.envelope.observed_at >= window.envelope.observed_at


def test_batch_equals_one_by_one(xgb_set: ModelSet) -> None:
    windows = trace_windows(MINER, pod_uid="m1") + trace_windows(BENIGN, pod_uid="b1")
    scorer = Scorer(xgb_set)
    batch = [v.score for v in _verdicts(scorer.score(windows))]
    single = [_verdicts(scorer.score([w]))[0].score for w in windows]
    assert batch == pytest.approx(single, abs=1e-6)


def test_too_few_syscalls_is_insufficient_data_not_silence(xgb_set: ModelSet) -> None:
    windows = trace_windows(QUIET, pod_uid="q1")
    assert any(w.count < 3 for w in windows)
    verdicts = _verdicts(Scorer(xgb_set, min_syscalls=3).score(windows))
    assert len(verdicts) == len(windows)
    for w, v in zip(windows, verdicts, strict=True):
        if w.count < 3:
            assert v.decision == "insufficient_data"
            assert v.score is None
            assert v.scores == []
            assert v.reasons == []
            assert v.model == xgb_set.primary.model.ref
            assert "min_syscalls 3" in v.detail
        else:
            assert v.decision in ("miner", "benign")


def test_default_min_syscalls_scores_most_real_miner_windows(xgb_set: ModelSet) -> None:
    """Miners make ~15 syscalls/s: the default must not hide them behind insufficient_data."""
    from minerlens_scorer.settings import ScorerSettings

    scorer = Scorer(xgb_set, min_syscalls=ScorerSettings().min_syscalls)
    verdicts = []
    for trace in ("miner-randomx-1t-r1", "miner-scrypt-1t-r1", "miner-sha256d-1t-r1", "miner-cryptonight-2t-r1"):
        verdicts += _verdicts(scorer.score(trace_windows(trace, pod_uid="m")))
    insufficient = sum(v.decision == "insufficient_data" for v in verdicts)
    assert insufficient <= 0.1 * len(verdicts)


def test_other_feature_spec_goes_to_dead_letter(xgb_set: ModelSet) -> None:
    count_spec = FeatureSpec.build(window=WindowPolicy.count(200))
    wrong = trace_windows(MINER, pod_uid="m1", spec=count_spec, limit=2)
    right = trace_windows(MINER, pod_uid="m1", limit=2)
    outcomes = Scorer(xgb_set).score([wrong[0], right[0], wrong[1], right[1]])
    assert [type(o) for o in outcomes] == [Rejected, Verdict, Rejected, Verdict]
    for o in outcomes[::2]:
        assert isinstance(o, Rejected)
        assert o.reason == SPEC_MISMATCH == "feature spec mismatch"
        assert count_spec.digest[:16] in o.detail
        assert xgb_set.primary.digest[:16] in o.detail


def test_wrong_vector_length_goes_to_dead_letter(xgb_set: ModelSet) -> None:
    w = trace_windows(MINER, pod_uid="m1", limit=1)[0]
    short = w.model_copy(update={"features": w.features[:-1]})
    (o,) = Scorer(xgb_set).score([short])
    assert isinstance(o, Rejected)
    assert o.reason == VECTOR_LENGTH


def test_unknown_features_are_imputed_not_rejected(xgb_set: ModelSet) -> None:
    w = trace_windows(MINER, pod_uid="m1", limit=3)
    blind = [x.model_copy(update={"features": [None] * 14 + x.features[14:]}) for x in w]
    verdicts = _verdicts(Scorer(xgb_set).score(blind))
    assert all(v.score is not None for v in verdicts)


def test_inline_reasons_from_background(xgb_set: ModelSet) -> None:
    assert xgb_set.primary.ranker is not None
    verdicts = _verdicts(Scorer(xgb_set).score(trace_windows("miner-scrypt-1t-yield-r1", pod_uid="m2")))
    flagged = [v for v in verdicts if v.decision == "miner"]
    assert flagged
    for v in flagged:
        summary, *features = v.reasons  # the behaviour sentence first (docs/alerts.md), then the features
        assert summary.feature == "summary"
        assert 1 <= len(features) <= 5
        weights = [r.contribution for r in v.reasons]
        assert weights == sorted(weights, reverse=True)
        assert all(c > 0 for c in weights)
        for r in features:
            assert r.feature in xgb_set.primary.model.manifest.feature_names
            assert "(benign pods: " in r.text
    benign = _verdicts(Scorer(xgb_set).score(trace_windows(BENIGN, pod_uid="b1")))
    assert all(v.reasons == [] for v in benign), "benign verdicts carry no reasons"
    # the yield miner spins on sched_yield: it is among its reasons somewhere
    texts = " ".join(r.text for v in flagged for r in v.reasons)
    assert "sched_yield" in texts


def test_without_background_no_reasons_and_says_so(trained: dict[str, Path]) -> None:
    tree = build_model_set([load_model(trained["tree"])])
    assert tree.primary.ranker is None
    verdicts = _verdicts(Scorer(tree).score(trace_windows(MINER, pod_uid="m1", limit=8)))
    flagged = [v for v in verdicts if v.decision == "miner"]
    assert flagged
    for v in flagged:
        assert v.reasons == []
        assert "no inline reasons" in v.detail
        assert "background.npz" in v.detail


def test_several_models_primary_decides_all_reported(trained: dict[str, Path], tmp_path: Path) -> None:
    seq = load_model(sequence_artifact(tmp_path / "seq"))
    models = [load_model(trained["xgboost"]), load_model(trained["tree"]), seq]
    ms = build_model_set(models, primary="minerlens-tree")
    assert ms.primary.name == "minerlens-tree"
    verdicts = _verdicts(Scorer(ms).score(trace_windows(MINER, pod_uid="m1", limit=10)))
    for v in verdicts:
        if v.decision == "insufficient_data":
            continue
        assert v.model.name == "minerlens-tree"
        assert [s.model.name for s in v.scores] == ["minerlens-tree", "minerlens-seq-test", "minerlens-xgboost"]
        assert v.scores[0].score == v.score
        for s in v.scores:
            assert s.miner == (s.score > s.threshold)
    # default primary: the shipped default model name, else the first feature model by name
    assert build_model_set(models).primary.name == "minerlens-xgboost"
    assert build_model_set(models[1:]).primary.name == "minerlens-tree"


def _spinning(window: FeatureWindow, share: float) -> FeatureWindow:
    from minerlens_core.features import VOCABULARY

    n = 40
    k = round(share * n)
    yield_id, read_id = VOCABULARY.index("sched_yield"), VOCABULARY.index("read")
    return window.model_copy(update={"sequence": [yield_id] * k + [read_id] * (n - k)})


def test_sequence_model_as_primary(tmp_path: Path) -> None:
    seq = load_model(sequence_artifact(tmp_path / "seq", length=32))
    ms = build_model_set([seq])
    assert ms.primary.model.input_kind == "sequence"
    base = trace_windows(MINER, pod_uid="m1", limit=2)
    windows = [_spinning(base[0], 0.0), _spinning(base[1], 1.0)]
    verdicts = _verdicts(Scorer(ms).score(windows))
    # the model reads the last 32 ids: none / all of them are sched_yield
    assert [v.decision for v in verdicts] == ["benign", "miner"]
    assert verdicts[0].score == pytest.approx(0.0)
    assert verdicts[1].score == pytest.approx(1.0)
    # shorter sequences are left-padded
    short = base[0].model_copy(update={"sequence": [windows[1].sequence[0]] * 8})
    (v,) = _verdicts(Scorer(ms).score([short]))
    assert v.score == pytest.approx(8 / 32)


def test_a_window_the_model_refuses_is_dead_lettered_alone(tmp_path: Path) -> None:
    ms = build_model_set([load_model(sequence_artifact(tmp_path / "seq", length=32))])
    good = trace_windows(MINER, pod_uid="m1", limit=3)
    bad = good[1].model_copy(update={"sequence": [10**6] * 4})  # no such syscall id: the lookup fails
    outcomes = Scorer(ms).score([good[0], bad, good[2]])
    assert [type(o) for o in outcomes] == [Verdict, Rejected, Verdict]
    assert isinstance(outcomes[1], Rejected)
    assert outcomes[1].reason == "scoring failed"


def test_swap_is_atomic_per_batch(trained: dict[str, Path], xgb_set: ModelSet) -> None:
    scorer = Scorer(xgb_set)
    tree = build_model_set([load_model(trained["tree"])])
    w = trace_windows(MINER, pod_uid="m1", limit=4)
    before = _verdicts(scorer.score(w))
    scorer.swap(tree)
    after = _verdicts(scorer.score(w))
    assert {v.model.name for v in before} == {"minerlens-xgboost"}
    assert {v.model.name for v in after} == {"minerlens-tree"}


def test_score_matrix_matches_onnx_model(xgb_set: ModelSet) -> None:
    windows = trace_windows(BENIGN, pod_uid="b1")
    X = np.array([w.vector() for w in windows], dtype=np.float32)
    expected = xgb_set.primary.model.score(X)
    got = [v.score for v in _verdicts(Scorer(xgb_set).score(windows))]
    assert got == pytest.approx(expected.tolist(), abs=1e-7)


def _with_network(windows: list[FeatureWindow], names: tuple[str, ...], sockets: int) -> list[FeatureWindow]:
    """The windows as a live capture with resource samples would give them: ``sockets`` internet sockets open, no
    socket I/O (the sample-v1 traces have no resource samples)."""
    cols = {n: names.index(n) for n in ("res.has", "res.sockets_inet", "io.socket_per_s", "io.inet_per_s")}
    out = []
    for w in windows:
        f = list(w.features)
        f[cols["res.has"]], f[cols["res.sockets_inet"]] = 1.0, float(sockets)
        f[cols["io.socket_per_s"]] = f[cols["io.inet_per_s"]] = 0.0
        out.append(w.model_copy(update={"features": f}))
    return out


def test_network_gate_of_the_model_makes_offline_windows_benign(trained: dict[str, Path], tmp_path: Path) -> None:
    """A model trained with ``--gate network`` names the gate in its manifest; the scorer then decides *benign* for a
    window over the threshold whose pod holds no internet socket and did no socket I/O (score kept, detail says
    why, counted), and still *miner* for the same window with a socket open."""
    gated_dir = tmp_path / "gated"
    shutil.copytree(trained["xgboost"], gated_dir)
    edit_manifest(gated_dir, gate="network")
    gated_set = build_model_set([load_model(gated_dir)])
    plain_set = build_model_set([load_model(trained["xgboost"])])
    names = gated_set.primary.model.spec.names
    windows = trace_windows(MINER, pod_uid="m1")
    offline, online = _with_network(windows, names, 0), _with_network(windows, names, 1)
    plain = _verdicts(Scorer(plain_set).score(offline))
    over = [i for i, v in enumerate(plain) if v.decision == "miner"]
    assert len(over) >= 0.5 * len(plain), "the sample miner must score over the threshold"
    scorer = Scorer(gated_set)
    gated = _verdicts(scorer.score(offline))
    assert all(gated[i].decision == "benign" for i in over)
    assert all(gated[i].score == plain[i].score for i in over)
    assert all("network gate" in gated[i].detail for i in over)
    assert scorer.gated == len(over)
    still = _verdicts(scorer.score(online))
    assert sum(v.decision == "miner" for v in still) == len(_verdicts(Scorer(plain_set).score(online))) > 0
    assert scorer.gated == len(over)  # windows with a socket open are never gated
    assert [v.decision for v in _verdicts(scorer.score(windows))] == [
        v.decision for v in _verdicts(Scorer(plain_set).score(windows))
    ], "windows without resource samples (res.has = 0) are never gated"
