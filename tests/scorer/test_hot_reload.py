"""Model hot reload: new artifact directories are verified and swapped in; tampered ones are refused and
the model that was serving keeps serving."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from minerlens_core.models import MANIFEST, ONNX_FILE
from minerlens_scorer.model_repository import ModelRepository, RepositoryEvent
from minerlens_scorer.scoring import Scorer
from minerlens_scorer.service import ScorerService
from minerlens_scorer.settings import ScorerSettings

from tests.scorer.helpers import copy_artifact, edit_manifest, trace_windows


def _tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def _later(minutes: int) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


def test_new_directory_is_served_and_tampered_one_refused(models_dir: Path) -> None:
    events: list[RepositoryEvent] = []
    repo = ModelRepository(models_dir, on_event=events.append)
    first = repo.refresh()
    assert first is not None
    assert first.primary.version == "0.1.0"
    assert repo.refresh() is None, "nothing changed"
    scorer = Scorer(first)
    windows = trace_windows("miner-randomx-2t-r1", pod_uid="m1", limit=5)

    copy_artifact(models_dir / "xgboost-time1s", models_dir / "xgboost-v2", version="0.2.0", created_at=_later(1))
    second = repo.refresh()
    assert second is not None
    assert second.primary.version == "0.2.0"
    assert [m.name for m in second.models] == ["minerlens-xgboost"], "one model per name: the newest"
    scorer.swap(second)
    assert {v.model.version for v in scorer.score(windows)} == {"0.2.0"}  # type: ignore[union-attr]

    bad = copy_artifact(models_dir / "xgboost-time1s", models_dir / "xgboost-v3", version="0.3.0", created_at=_later(2))
    _tamper(bad / ONNX_FILE)
    assert repo.refresh() is None, "a tampered artifact changes nothing"
    assert "sha256" in repo.refused[bad]
    assert "modified" in repo.refused[bad]
    assert repo.current is second
    assert {v.model.version for v in scorer.score(windows)} == {"0.2.0"}  # type: ignore[union-attr]
    assert [e.kind for e in events] == ["loaded", "loaded", "refused"]
    assert repo.refresh() is None
    assert len(events) == 3, "a refused artifact is not retried until it changes"

    shutil.rmtree(bad)
    shutil.rmtree(models_dir / "xgboost-v2")
    third = repo.refresh()
    assert third is not None
    assert third.primary.version == "0.1.0", "removing the newest falls back"
    assert bad not in repo.refused


def test_in_place_tampering_keeps_the_loaded_model(models_dir: Path) -> None:
    repo = ModelRepository(models_dir)
    served = repo.refresh()
    assert served is not None
    artifact = models_dir / "xgboost-time1s"
    original = (artifact / ONNX_FILE).read_bytes()
    _tamper(artifact / ONNX_FILE)
    assert repo.refresh() is None
    assert artifact in repo.refused
    # the session loaded before the tampering still scores
    out = Scorer(served).score(trace_windows("numpy-mlp-r1", pod_uid="b", limit=2))
    assert all(v.model.version == "0.1.0" for v in out)  # type: ignore[union-attr]
    (artifact / ONNX_FILE).write_bytes(original)
    again = repo.refresh()
    assert again is not None
    assert artifact not in repo.refused


def test_changed_manifest_is_reloaded(models_dir: Path) -> None:
    repo = ModelRepository(models_dir)
    assert repo.refresh() is not None
    edit_manifest(models_dir / "xgboost-time1s", threshold=0.5, version="0.1.1")
    new = repo.refresh()
    assert new is not None
    assert new.primary.model.threshold == 0.5
    assert new.primary.version == "0.1.1"


def test_hidden_and_incomplete_directories(models_dir: Path) -> None:
    shutil.copytree(models_dir / "xgboost-time1s", models_dir / ".xgboost-v9.abc.tmp")
    partial = models_dir / "xgboost-partial"
    partial.mkdir()
    shutil.copy(models_dir / "xgboost-time1s" / MANIFEST, partial / MANIFEST)  # a copy still in progress
    repo = ModelRepository(models_dir)
    current = repo.refresh()
    assert current is not None
    assert [m.directory.name for m in current.models] == ["xgboost-time1s"]
    assert list(repo.refused) == [partial]
    for name in os.listdir(models_dir / "xgboost-time1s"):  # the copy completes
        if name != MANIFEST:
            shutil.copy(models_dir / "xgboost-time1s" / name, partial / name)
    edit_manifest(partial, version="0.5.0", created_at=_later(5).isoformat())
    assert repo.refresh() is not None
    assert repo.current is not None
    assert repo.current.primary.directory == partial


def test_missing_primary_serves_nothing_new(models_dir: Path) -> None:
    repo = ModelRepository(models_dir, primary="minerlens-lstm")
    assert repo.refresh() is None
    assert repo.current is None


def test_models_dir_may_be_one_artifact(models_dir: Path) -> None:
    current = ModelRepository(models_dir / "xgboost-time1s").refresh()
    assert current is not None
    assert current.primary.name == "minerlens-xgboost"


async def test_service_swaps_models_off_the_loop_and_counts_refusals(models_dir: Path) -> None:
    service = ScorerService(ScorerSettings(models_dir=models_dir, http_port=0), kafka=_no_kafka())
    assert await service.reload_models()
    assert service.scorer is not None
    assert service.scorer.models.primary.version == "0.1.0"
    bad = copy_artifact(models_dir / "xgboost-time1s", models_dir / "xgboost-v3", version="0.3.0", created_at=_later(2))
    _tamper(bad / ONNX_FILE)
    assert not await service.reload_models()
    assert service.scorer.models.primary.version == "0.1.0"
    assert _metric(service, "minerlens_scorer_model_reloads_total", {"result": "refused"}) == 1
    assert str(bad) in service.ready()["refused_artifacts"]  # type: ignore[operator]
    copy_artifact(models_dir / "xgboost-time1s", models_dir / "xgboost-v4", version="0.4.0", created_at=_later(3))
    assert await service.reload_models()
    assert service.scorer.models.primary.version == "0.4.0"
    assert _metric(service, "minerlens_scorer_model_info", {"name": "minerlens-xgboost", "version": "0.4.0"}) == 1


def _no_kafka() -> object:
    from minerlens_core.settings import KafkaSettings

    return KafkaSettings(bootstrap="127.0.0.1:1")


def _metric(service: ScorerService, name: str, labels: dict[str, str]) -> float | None:
    value = service.metrics.registry.get_sample_value(name, labels)
    return value


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINERLENS_SCORER_PRIMARY_MODEL", raising=False)
