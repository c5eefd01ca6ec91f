"""SHAP and LIME explainers on real fitted models: the dominating syscall ranks first, directions follow the
signs, texts compare with benign pods, the attributions add up, explanations are deterministic, and a
tampered artifact is refused.

The models are trained on a controlled problem: the benign windows of the test dataset against the same
windows with 20-90% of their calls replaced by ``sched_yield`` (timestamps and threads unchanged), so the
only thing that separates the classes is sched_yield and a faithful explanation must say so.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from minerlens_core.datasets.manifest import load_manifest
from minerlens_core.errors import ArtifactError, ArtifactIntegrityError
from minerlens_core.features import FeatureSpec, Window, index_of, vectorize_many, windows_from_trace
from minerlens_core.models import BACKGROUND_FILE
from minerlens_core.schemas.explanations import Explanation
from minerlens_core.traces import read_trace
from minerlens_training.artifacts import TrainingData, save_artifact
from minerlens_training.detectors import make_detector
from minerlens_training.explain import load_explainer, render_png
from minerlens_training.explain.shap_method import ShapExplainer
from minerlens_training.explain.wording import FeatureWording, WindowIds, share

SYSCALL = "sched_yield"
FPR = 0.05


@dataclass(frozen=True)
class Controlled:
    X: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64]
    dominated: list[Window]
    benign: list[Window]
    models: dict[str, Path]

    def vectors(self, windows: list[Window]) -> npt.NDArray[np.float32]:
        return vectorize_many(windows, FeatureSpec.default())


def _dominate(w: Window, fraction: float, rng: np.random.Generator) -> Window:
    ids = w.ids.copy()
    ids[rng.choice(len(ids), size=int(fraction * len(ids)), replace=False)] = index_of(SYSCALL)
    return replace(w, ids=ids)


def _benign_windows(dataset_dir: Path) -> list[Window]:
    spec = FeatureSpec.default()
    out: list[Window] = []
    for run in load_manifest(dataset_dir).runs:
        if run.status == "ok" and run.label == "benign" and run.file:
            out += list(windows_from_trace(read_trace(dataset_dir / run.file), spec.window))
    return out


@pytest.fixture(scope="module")
def controlled(dataset_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Controlled:
    rng = np.random.default_rng(0)
    windows = _benign_windows(dataset_dir)
    assert len(windows) >= 20
    train, test = windows[::2], windows[1::2]
    miners = [_dominate(w, rng.uniform(0.2, 0.9), rng) for w in train]
    spec = FeatureSpec.default()
    X = vectorize_many(train + miners, spec)
    y = np.r_[np.zeros(len(train)), np.ones(len(miners))].astype(np.int64)
    root = tmp_path_factory.mktemp("explain-models")
    models: dict[str, Path] = {}
    for name, params in (("xgboost", {"n_estimators": 40}), ("tree", {}), ("mlp", {"max_iter": 40})):
        det = make_detector(name, seed=0, **params).fit(X, y)
        det.infer_threshold(X[y == 0], FPR)
        models[name] = root / name
        save_artifact(det, models[name], spec, TrainingData(manifest_sha256="0" * 64), reference=(X, y))
    dominated = [_dominate(w, 0.7, rng) for w in test[:4]]
    return Controlled(X, y, dominated, test[:4], models)


def _check_directions(e: Explanation) -> None:
    for c in e.contributions:
        assert c.contribution != 0
        assert (c.contribution > 0) == (c.direction == "toward_miner"), c
        assert math.isfinite(c.contribution)
    assert e.miner == (e.score > (e.threshold or 0.0))
    assert e.summary
    assert "\n" not in e.summary


def _names_syscall(text: str, feature: str) -> bool:
    return SYSCALL in text or SYSCALL in feature


def test_shap_on_xgboost_ranks_the_dominating_syscall_first(controlled: Controlled) -> None:
    explainer = load_explainer(controlled.models["xgboost"], "shap")
    X = controlled.vectors(controlled.dominated)
    for w, x in zip(controlled.dominated, X, strict=True):
        e = explainer.explain(x, window_id="pod/-/count:1000/1000/3", top=5, ids=w.ids)
        _check_directions(e)
        assert e.miner is True
        assert e.method == "shap"
        assert e.window_id == "pod/-/count:1000/1000/3"
        top = e.contributions[0]
        assert top.feature in (f"freq.{SYSCALL}", f"freq_nocheap.{SYSCALL}"), e.contributions
        assert top.direction == "toward_miner"
        assert top.value is not None
        assert top.value > 0.5
        assert top.baseline is not None
        assert top.baseline < 0.01
        assert top.text.startswith(f"{SYSCALL} is "), top.text
        assert "benign pods: " in top.text, top.text
        assert e.params["unit"] == "log-odds"
        assert "Toward miner: sched_yield is" in e.summary
        assert e.cost_ms > 0
    for x in controlled.vectors(controlled.benign):
        e = explainer.explain(x, top=5)
        _check_directions(e)
        assert e.miner is False
        assert e.contributions[0].direction == "toward_benign"
        assert _names_syscall(e.contributions[0].text, e.contributions[0].feature)


def test_tree_shap_values_add_up_to_the_model_output(controlled: Controlled) -> None:
    X = np.concatenate([controlled.vectors(controlled.dominated), controlled.vectors(controlled.benign)])
    for name in ("xgboost", "tree"):
        explainer = load_explainer(controlled.models[name], "shap")
        assert isinstance(explainer, ShapExplainer)
        for x in X:
            values, base = explainer.attributions(x[None])
            p = float(explainer.score(x[None])[0])
            total = base + float(values.sum())
            if name == "xgboost":  # log-odds
                assert total == pytest.approx(math.log(p / (1 - p)), abs=1e-3)
            else:  # decision tree: probability
                assert total == pytest.approx(p, abs=1e-6)


def test_tree_shap_names_the_syscall_behind_an_ngram_bucket(controlled: Controlled) -> None:
    explainer = load_explainer(controlled.models["tree"], "shap")
    w = controlled.dominated[0]
    e = explainer.explain(controlled.vectors([w])[0], top=3, ids=w.ids)
    _check_directions(e)
    assert e.miner is True
    top = e.contributions[0]
    assert top.direction == "toward_miner"
    assert _names_syscall(top.text, top.feature), top
    if top.feature.startswith("ngram"):
        assert "hash bucket" in top.label
        assert "→" in top.label
        assert "like " in top.text
        assert "→" in top.text
    assert e.params["unit"] == "probability"


def test_lime_is_deterministic_and_agrees_on_the_syscall(controlled: Controlled) -> None:
    explainer = load_explainer(controlled.models["xgboost"], "lime", num_samples=1000)
    w = controlled.dominated[0]
    x = controlled.vectors([w])[0]
    a = explainer.explain(x, top=5, ids=w.ids)
    b = explainer.explain(x, top=5, ids=w.ids)
    assert [(c.feature, c.contribution) for c in a.contributions] == [
        (c.feature, c.contribution) for c in b.contributions
    ]
    _check_directions(a)
    assert a.method == "lime"
    assert a.miner is True
    top = a.contributions[0]
    assert top.feature in (f"freq.{SYSCALL}", f"freq_nocheap.{SYSCALL}"), a.contributions
    assert top.direction == "toward_miner"
    assert "benign pods" in top.text
    assert 0.0 <= float(a.params["r2"]) <= 1.0
    benign = explainer.explain(controlled.vectors(controlled.benign[:1])[0], top=5)
    _check_directions(benign)
    assert benign.miner is False
    # LIME explains departures from the benign median: a benign window's sched_yield (0, like every benign
    # pod) is not perturbed, so it can be no reason either way
    assert all(SYSCALL not in c.feature for c in benign.contributions)
    assert all(c.value != c.baseline for c in benign.contributions)
    other_seed = load_explainer(controlled.models["xgboost"], "lime", num_samples=1000, seed=1).explain(x, top=5)
    assert other_seed.contributions[0].feature == top.feature


@pytest.mark.slow  # SHAP's masker is compiled by numba on first use (~10 s)
def test_permutation_shap_on_the_mlp_adds_up_and_is_deterministic(controlled: Controlled) -> None:
    explainer = load_explainer(controlled.models["mlp"], "shap", background_size=10, permutations=2)
    assert isinstance(explainer, ShapExplainer)
    w = controlled.dominated[0]
    x = controlled.vectors([w])[0]
    a = explainer.explain(x, top=5, ids=w.ids)
    b = explainer.explain(x, top=5, ids=w.ids)
    assert a.contributions == b.contributions
    _check_directions(a)
    assert a.params["explainer"] == "PermutationExplainer"
    values, base = explainer.attributions(x[None])
    p = min(max(a.score, 1e-6), 1 - 1e-6)
    assert base + values.sum() == pytest.approx(math.log(p / (1 - p)), abs=1e-4)  # efficiency
    if a.miner:
        assert values.sum() > 0
        assert any(_names_syscall(c.text, c.feature) for c in a.contributions if c.direction == "toward_miner")


def test_artifact_without_background(controlled: Controlled, tmp_path: Path) -> None:
    det = make_detector("tree", seed=0).fit(controlled.X, controlled.y)
    det.infer_threshold(controlled.X[controlled.y == 0], FPR)
    out = tmp_path / "no-bg"
    save_artifact(det, out, FeatureSpec.default(), TrainingData(manifest_sha256="0" * 64))
    assert not (out / BACKGROUND_FILE).exists()
    e = load_explainer(out, "shap").explain(controlled.vectors(controlled.dominated[:1])[0], top=3)
    assert e.contributions
    assert all(c.baseline is None and "benign pods" not in c.text for c in e.contributions)
    assert "no background.npz" in e.summary
    with pytest.raises(ArtifactError, match="no background"):
        load_explainer(out, "lime")


def test_tampered_or_unsuitable_artifacts_are_refused(controlled: Controlled, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(controlled.models["xgboost"], copy)
    with (copy / BACKGROUND_FILE).open("ab") as f:
        f.write(b"\0")
    for method in ("shap", "lime"):
        with pytest.raises(ArtifactIntegrityError, match="modified"):
            load_explainer(copy, method)
    with pytest.raises(ArtifactError, match="lstm-ae explains sequence models"):
        load_explainer(controlled.models["xgboost"], "lstm-ae")
    with pytest.raises(ValueError, match="unknown explanation method"):
        load_explainer(controlled.models["xgboost"], "anchors")
    with pytest.raises(ValueError, match="unexpected keyword"):
        load_explainer(controlled.models["xgboost"], "lime", bogus=1)
    with pytest.raises(ArtifactError, match="not a model artifact"):
        load_explainer(tmp_path, "shap")
    explainer = load_explainer(controlled.models["xgboost"], "shap")
    with pytest.raises(ValueError, match="features"):
        explainer.explain(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="top"):
        explainer.explain(controlled.X[0], top=0)


def test_render_png(controlled: Controlled) -> None:
    explainer = load_explainer(controlled.models["xgboost"], "shap")
    w = controlled.dominated[0]
    e = explainer.explain(controlled.vectors([w])[0], window_id="a/b/c/1", top=8, ids=w.ids)
    png = render_png(e)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 5000
    empty = render_png(e.model_copy(update={"contributions": []}))
    assert empty.startswith(b"\x89PNG")


def test_wording_of_every_group() -> None:
    """The explanations say features in the feature library's words (the scorer's reasons use the same)."""
    spec = FeatureSpec.default()
    words = FeatureWording(spec)
    assert share(0.41) == "41%"
    assert share(0.004) == "0.4%"
    assert share(0.0) == "0%"
    assert (
        words.sentence("freq.sched_yield", 0.41, 0.0, 0.0, 0.004) == "sched_yield is 41% of calls (benign pods: < 1%)"
    )
    assert (
        words.sentence("freq_nocheap.futex", 0.62, 0.0, 0.03, 0.12)
        == "futex is 62% of non-trivial calls (benign pods: 0-12%)"
    )
    assert words.sentence("freq.read", 0.2) == "read is 20% of calls"
    assert "trivial calls (getpid, clock_gettime, sleeps, ...) are 50% of calls" in words.sentence("cheap_share", 0.5)
    assert words.sentence("stat.log_count", math.log10(1001)).startswith("1,000 syscalls in the window")
    assert "bits" in words.sentence("stat.entropy", 1.25)
    assert words.sentence("rate.epoll_wait", 1234.0) == "epoll_wait/epoll_pwait/epoll_pwait2 at 1,234 calls/s"
    assert words.sentence("rate.syscalls_per_s", 50.0, 1.0, 10.0, 100.0) == (
        "50 syscalls/s (benign pods: 1-100 syscalls/s)"
    )
    assert words.sentence("iat.median_us", 12.5) == "the median gap between syscalls is 12 µs"
    assert words.sentence("rate.sched_yield", None) == "sched_yield calls per second: unknown"
    assert words.sentence("time.has_time", 1.0, 1.0, 1.0, 1.0) == "timestamps known: yes"
    assert "threads spend > 80%" in words.sentence("thread.dominated", 3.0)
    assert words.sentence("res.cpu_cores", 2.0, 0.0, 0.1, 0.5) == "2.0 cores busy (benign pods: 0-0.5 cores)"
    assert "hash bucket 17" in words.label("ngram2.17")
    ids = np.array([index_of(n) for n in ["futex", SYSCALL] * 50 + ["getpid"] * 10], dtype=np.int16)
    context = WindowIds(ids, spec)
    pair = "futex→sched_yield"
    from minerlens_core.features import ngram_buckets

    bucket = int(ngram_buckets(ids[:2].astype(np.int64), 2, spec.params.buckets)[0])
    assert pair in words.sentence(f"ngram2_nc.{bucket}", 0.5, context=context)
    assert pair in words.label(f"ngram2_nc.{bucket}", context)
    assert "most frequent non-trivial syscall (futex)" in words.sentence("stat.top_share_nc", 0.5, context=context)
    assert words.label("no.such") == "no.such"


def test_feature_explanations_describe_the_window(controlled: Controlled) -> None:
    """The summary paragraph of a feature model says what the window did, from its own vector."""
    explainer = load_explainer(controlled.models["xgboost"], "shap")
    w = controlled.dominated[0]
    e = explainer.explain(controlled.vectors([w])[0], top=3, ids=w.ids)
    m = re.search(r"Behaviour: (.*?\.) Toward", e.summary)
    assert m, e.summary
    assert "top syscalls: sched_yield 7" in m.group(1)  # 70% of the calls were replaced by sched_yield
    # the dataset's traces carry no resource samples: said, never made up
    assert "CPU, memory and open sockets unknown (no resource samples)" in m.group(1)
    assert "cores" not in m.group(1)
