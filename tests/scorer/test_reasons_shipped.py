"""The shipped version-1 model (models/default) still gets readable reasons: the summary first (no CPU made up:
its features have none), then features that name syscalls; never a bare n-gram bucket number."""

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

from tests.scorer.helpers import SAMPLE, trace_windows

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "default"
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
    assert models.primary.model.spec.version == "1"
    return models


@pytest.mark.parametrize("run", ["miner-randomx-2t-r1", "miner-sha256d-hidden-web-r1", "miner-scrypt-1t-yield-r1"])
def test_shipped_model_reasons_name_syscalls(shipped: ModelSet, run: str) -> None:
    windows = trace_windows(run, pod_uid="m", spec=shipped.primary.model.spec)
    verdicts = [v for v in Scorer(shipped).score(windows) if isinstance(v, Verdict) and v.decision == "miner"]
    assert verdicts, f"{run}: no miner verdict from the shipped model"
    syscalls = set()
    for v in verdicts:
        summary, *features = v.reasons
        assert summary.feature == SUMMARY
        assert summary.contribution == pytest.approx(sum(r.contribution for r in features), abs=1e-5)
        assert re.match(r"[\d,.]+ syscalls/s \(benign pods: [\d,.]+-[\d,.]+ syscalls/s\); ", summary.text), summary.text
        assert "CPU, memory, open sockets and socket vs file I/O unknown (not measured)" in summary.text
        assert "cores" not in summary.text
        assert features
        for r in features:
            assert not BARE_BUCKET.search(r.text), r.text
            assert "(benign pods: " in r.text
            if r.feature.startswith("ngram"):
                assert "→" in r.text, r.text
            syscalls |= set(re.findall(r"[a-z_0-9]+(?=→| is \d)", r.text))
    assert syscalls, "no reason names a syscall"
