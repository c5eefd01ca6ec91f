"""A sequence autoencoder next to the feature model: lstm-ae explanations through the same routes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from minerlens_core.schemas.windows import FeatureWindow
from minerlens_explainer.app import CACHE_HEADER, MODEL_HEADER
from minerlens_explainer.settings import ExplainerSettings

from tests.explainer.conftest import Artifacts, Tokens, serve
from tests.explainer.test_pods import feed

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def test_lstm_ae_explanations(
    make_settings: Callable[..., ExplainerSettings], artifacts: Artifacts, lstm_ae: Path, tokens: Tokens,
    miner_windows: list[FeatureWindow],
) -> None:  # fmt: skip
    async with serve(make_settings(models=[artifacts.v1, lstm_ae])) as api:
        c, auth = api.client, tokens.auth()
        models = {m["name"]: m for m in (await c.get("/v1/models", headers=auth)).json()["models"]}
        assert models["test-xgboost"]["methods"] == ["shap", "lime"]
        assert models["test-xgboost"]["default_for"] == ["shap", "lime"]
        assert models["test-lstm-ae"]["methods"] == ["lstm-ae"]
        assert models["test-lstm-ae"]["input_kind"] == "sequence"
        assert models["test-lstm-ae"]["kind_of_score"] == "anomaly score"

        await feed(api, miner_windows[:3], [0.4, 0.9, 0.5])
        r = await c.get("/v1/pods/team-a/miner-1/explanation?method=lstm-ae", headers=auth)
        assert r.status_code == 200, r.text
        assert r.headers[MODEL_HEADER] == "test-lstm-ae@0.1.0"
        assert r.headers[CACHE_HEADER] == "miss"
        e = r.json()["explanation"]
        assert e["method"] == "lstm-ae"
        assert e["window_id"] == miner_windows[1].window_id
        assert e["contributions"]
        assert all(c["direction"] == "toward_miner" for c in e["contributions"])
        assert "reconstruction error" in e["summary"]
        again = await c.get("/v1/pods/team-a/miner-1/explanation?method=lstm-ae", headers=auth)
        assert again.headers[CACHE_HEADER] == "hit"

        r = await c.post("/v1/explain", json={"method": "lstm-ae", "sequence": miner_windows[0].sequence},
                         headers=auth)  # fmt: skip
        assert r.status_code == 200
        assert r.json()["explanation"]["model"]["name"] == "test-lstm-ae"
        r = await c.post("/v1/explain", json={"method": "shap", "model": "test-lstm-ae",
                         "features": miner_windows[0].features}, headers=auth)  # fmt: skip
        assert r.status_code == 422
        assert "does not support method 'shap'" in r.json()["message"]
        r = await c.post("/v1/explain", json={"method": "lstm-ae", "features": miner_windows[0].features},
                         headers=auth)  # fmt: skip
        assert r.status_code == 422
        assert "explains syscall sequences" in r.json()["message"]
