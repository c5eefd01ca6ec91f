"""The shipped model (models/default, feature version 2) gives readable reasons on the quiet miners it exists for:
the behaviour summary first (cores busy against syscalls made), then features that name syscalls; never a bare
n-gram bucket number."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from minerlens_core.models.seal import read_manifest_bytes, write_seal
from minerlens_core.schemas.windows import Verdict
from minerlens_scorer.model_set import ModelSet, build_model_set, load_model
from minerlens_scorer.reasons import SUMMARY
from minerlens_scorer.scoring import Scorer

from tests.scorer.helpers import trace_windows

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "default"
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
BARE_BUCKET = re.compile(r"(#\s*\d+|bucket\s*\d+|pattern\s*\d+)")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> ModelSet:
    if not (SHIPPED / "manifest.json").is_file() or not (SAMPLE / "manifest.json").is_file():
        pytest.skip("models/default or data/sample is missing")
    copy = tmp_path_factory.mktemp("shipped") / "default"
    shutil.copytree(SHIPPED, copy)
    if not (copy / "manifest.sha256").is_file():  # an artifact from before seals: seal the copy, as its owner would
        write_seal(copy, read_manifest_bytes(copy))
    models = build_model_set([load_model(copy)])
    assert models.primary.model.spec.version == "2"
    return models


@pytest.mark.parametrize("run", ["xmrig-no-yield-r1", "miner-randomx-no-yield-r1", "xmrig-hidden-web-r1"])
def test_shipped_model_reasons_name_syscalls(shipped: ModelSet, run: str) -> None:
    windows = trace_windows(run, pod_uid="m", spec=shipped.primary.model.spec, sample=SAMPLE)
    verdicts = [v for v in Scorer(shipped).score(windows) if isinstance(v, Verdict) and v.decision == "miner"]
    assert verdicts, f"{run}: no miner verdict from the shipped model"
    syscalls = set()
    busy = 0
    for v in verdicts:
        summary, *features = v.reasons
        assert summary.feature == SUMMARY
        assert summary.contribution == pytest.approx(sum(r.contribution for r in features), abs=1e-5)
        # CPU from the resource samples (unknown only where the sampled slice cut them off), never "not measured"
        pattern = r"([\d.]+ cores busy|CPU unknown \(too few resource samples\)) while making [\d,.]+ syscalls?/s "
        assert re.match(pattern, summary.text), summary.text
        assert "TCP/UDP socket" in summary.text
        assert "not measured" not in summary.text
        busy += "cores busy" in summary.text
        assert features
        for r in features:
            assert not BARE_BUCKET.search(r.text), r.text
            assert "(benign pods: " in r.text
            if r.feature.startswith("ngram"):
                assert "→" in r.text, r.text
            syscalls |= set(re.findall(r"[a-z_0-9]+(?=→| is \d)", r.text))
    assert syscalls, "no reason names a syscall"
    assert busy, "no miner verdict says how many cores the pod kept busy"
