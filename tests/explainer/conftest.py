"""Fixtures: real model artifacts built from the committed lab sample, a tokens file, the real Redis,
and the API app driven in-process through httpx (ASGI) with its lifespan."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from minerlens_core.features import FeatureSpec, WindowPolicy
from minerlens_core.schemas.windows import FeatureWindow
from minerlens_explainer.app import create_app
from minerlens_explainer.runtime import Runtime
from minerlens_explainer.settings import ExplainerSettings

from tests.explainer.factory import BENIGN_TRACE, MINER_TRACE, SAMPLE, feature_windows, pod_ref
from tests.integration.services import require_redis


@dataclass(frozen=True)
class Artifacts:
    v1: Path
    v2: Path
    """the same detector saved as version 0.2.0 (a new model version)"""
    spec: FeatureSpec


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    """An XGBoost detector on 1-s time windows of data/sample, saved with its background (LIME needs it)."""
    from minerlens_training.artifacts import TrainingData, save_artifact
    from minerlens_training.datasets import load_dataset
    from minerlens_training.detectors import make_detector

    spec = FeatureSpec.build(window=WindowPolicy.time(1.0))
    ds = load_dataset(SAMPLE, spec)
    det = make_detector("xgboost", seed=0).fit(ds.X, ds.y)
    det.infer_threshold(ds.X[ds.y == 0], 0.05)
    info = TrainingData(manifest_sha256=ds.manifest_sha256, source=ds.source, windows=len(ds), runs=len(ds.runs))
    root = tmp_path_factory.mktemp("explainer-models")
    for name, version in (("xgb-v1", "0.1.0"), ("xgb-v2", "0.2.0")):
        save_artifact(det, root / name, spec, info, model_name="test-xgboost", model_version=version,
                      reference=(ds.X, ds.y), background_size=60)  # fmt: skip
    return Artifacts(root / "xgb-v1", root / "xgb-v2", spec)


@pytest.fixture(scope="session")
def lstm_ae(tmp_path_factory: pytest.TempPathFactory, artifacts: Artifacts) -> Path:
    """A small LSTM autoencoder on the benign windows of data/sample (a few epochs: explanations, not accuracy)."""
    pytest.importorskip("torch", reason="the LSTM autoencoder needs minerlens-training[deep]")
    from minerlens_training.artifacts import TrainingData
    from minerlens_training.datasets import load_dataset
    from minerlens_training.detectors.sequence import LSTMAutoencoderDetector
    from minerlens_training.sequence.artifacts import save_sequence_artifact

    ds = load_dataset(SAMPLE, artifacts.spec)
    det = LSTMAutoencoderDetector(seed=0, length=64, epochs=3, embedding=16, hidden=32).fit(ds.sequences, ds.y)
    det.infer_threshold(ds.sequences[ds.y == 0], 0.05)
    out = tmp_path_factory.mktemp("explainer-ae") / "lstm-ae"
    info = TrainingData(manifest_sha256=ds.manifest_sha256, source=ds.source, windows=len(ds), runs=len(ds.runs))
    save_sequence_artifact(det, out, artifacts.spec, info, model_name="test-lstm-ae", reference=(ds.X, ds.y))
    return out


@pytest.fixture(scope="session")
def miner_windows(artifacts: Artifacts) -> list[FeatureWindow]:
    return feature_windows(MINER_TRACE, artifacts.spec, pod_ref("team-a", "miner-1"), limit=12)


@pytest.fixture(scope="session")
def benign_windows(artifacts: Artifacts) -> list[FeatureWindow]:
    return feature_windows(BENIGN_TRACE, artifacts.spec, pod_ref("team-b", "gzip-1"), limit=12)


@dataclass(frozen=True)
class Tokens:
    path: Path
    read: str
    admin: str

    def auth(self, role: str = "read") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin if role == 'admin' else self.read}"}


@pytest.fixture(scope="session")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Tokens:
    read, admin = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    path = tmp_path_factory.mktemp("secrets") / "tokens"
    path.write_text(f"# test tokens\nread:{read}\nadmin:{admin}\n")
    return Tokens(path, read, admin)


@pytest.fixture
def redis_url() -> str:
    return require_redis()


def purge(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.unlink(*keys)
    except redis.RedisError:
        pass
    finally:
        client.close()


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test only (parallel runs share the Redis); its keys are removed afterwards."""
    p = f"test:explainer:{uuid.uuid4().hex[:10]}:"
    yield p
    purge(redis_url, p)


@pytest.fixture
def make_settings(
    artifacts: Artifacts, tokens: Tokens, redis_url: str, prefix: str
) -> Callable[..., ExplainerSettings]:
    def build(**overrides: Any) -> ExplainerSettings:
        values: dict[str, Any] = {
            "tokens_file": tokens.path,
            "models": [artifacts.v1],
            "redis_url": redis_url,
            "key_prefix": prefix,
            "ingest": False,
            "redis_retry_s": 0.2,
            "redis_timeout_s": 5.0,  # generous: the test machine is shared and may be saturated
        }
        values.update(overrides)
        return ExplainerSettings(**values)

    return build


@dataclass
class Api:
    client: httpx.AsyncClient
    runtime: Runtime

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.runtime.metrics.value(name, labels)

    def computed(self) -> float:
        return sum(
            s.value
            for m in self.runtime.metrics.registry.collect()
            if m.name == "minerlens_explainer_explanations_computed"
            for s in m.samples
            if s.name.endswith("_total")
        )


@contextlib.asynccontextmanager
async def serve(settings: ExplainerSettings, **kwargs: Any) -> AsyncIterator[Api]:
    """The app with its lifespan (ingestion, shutdown), reached in-process over ASGI."""
    app = create_app(settings, **kwargs)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://explainer") as client:
            yield Api(client, app.state.runtime)


@pytest.fixture
async def api(make_settings: Callable[..., ExplainerSettings]) -> AsyncIterator[Api]:
    async with serve(make_settings()) as a:
        yield a


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A throwaway redis-server (no persistence) that this test may kill."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=0.2).ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("own redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/install-system-deps.sh)")
    r = OwnRedis(tmp_path)
    r.start()
    try:
        yield r
    finally:
        r.kill()
