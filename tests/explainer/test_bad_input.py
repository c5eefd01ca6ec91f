"""Bad requests get a 4xx JSON error with a message (never a stack trace)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from minerlens_core.schemas.windows import FeatureWindow
from minerlens_explainer.settings import ExplainerSettings

from tests.explainer.conftest import Api, Tokens, serve

pytestmark = pytest.mark.redis


def _error(r: object, status: int, *needles: str) -> None:
    import httpx

    assert isinstance(r, httpx.Response)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert set(doc) <= {"error", "message", "detail"}
    assert doc["error"]
    assert doc["message"]
    assert "Traceback" not in r.text
    for n in needles:
        assert n in doc["message"], (n, doc["message"])


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/v1/pods/Team_A/miner-1", "path.namespace"),  # not a DNS-1123 label
        ("/v1/pods/" + "a" * 64 + "/miner-1", "path.namespace"),  # too long for a label
        ("/v1/pods/team-a/-miner", "path.pod"),
        ("/v1/pods/team-a/Miner.1", "path.pod"),
        ("/v1/pods/team-a/" + "a" * 254, "path.pod"),
        ("/v1/pods/team-a/miner-1/explanation?method=kernelshap", "query.method"),
        ("/v1/pods/team-a/miner-1/explanation?format=svg", "query.format"),
        ("/v1/pods/team-a/miner-1/explanation?top=0", "query.top"),
        ("/v1/pods/team-a/miner-1/explanation?top=51", "query.top"),
        ("/v1/pods/team-a/miner-1/explanation?window=a%20b", "query.window"),
        ("/v1/pods?namespace=UPPER", "query.namespace"),
        ("/v1/pods?alerting=perhaps", "query.alerting"),
        ("/v1/pods/team-a/miner-1?limit=0", "query.limit"),
    ],
)
async def test_invalid_parameters(api: Api, tokens: Tokens, path: str, needle: str) -> None:
    r = await api.client.get(path, headers=tokens.auth())
    _error(r, 422, "invalid request", needle)
    assert r.json()["detail"]


async def test_invalid_bodies(api: Api, tokens: Tokens, miner_windows: list[FeatureWindow], artifacts: object) -> None:
    c, auth = api.client, tokens.auth()
    w = miner_windows[0]
    dim = len(w.features)
    cases: list[tuple[object, int, str]] = [
        ({}, 422, "give the window to explain"),
        ({"features": [0.1, 0.2]}, 422, f"takes {dim} features, got 2"),
        ({"features": w.features, "window": w.model_dump(mode="json")}, 422, "not both"),
        ({"features": w.features, "method": "gradcam"}, 422, "body.method"),
        ({"features": w.features, "top": 0}, 422, "body.top"),
        ({"features": w.features, "unknown": 1}, 422, "body.unknown"),
        ({"features": w.features, "window_id": "has space"}, 422, "body.window_id"),
        ({"features": w.features, "model": "nope"}, 404, "no model named 'nope'"),
        ({"features": w.features, "method": "lstm-ae"}, 422, "no loaded model supports method 'lstm-ae'"),
        ({"sequence": [1, 2, 3], "method": "shap"}, 422, "explains feature vectors"),
        ({"sequence": [-1, 2]}, 422, "sequence ids"),
        ({"window": {**w.model_dump(mode="json"), "feature_digest": "0" * 64}}, 422, "feature spec 0000000000000000"),
        ({"window": {**w.model_dump(mode="json"), "features": w.features[:-1]}}, 422, f"takes {dim} features"),
        # count 0 is legal (a pod burning CPU without a syscall); a negative count is not
        ({"window": {**w.model_dump(mode="json"), "count": -1}}, 422, "body.window.count"),
        ({"window": {k: v for k, v in w.model_dump(mode="json").items() if k != "envelope"}}, 422, "envelope"),
        ([1, 2, 3], 422, "invalid request"),
    ]
    for payload, status, needle in cases:
        r = await c.post("/v1/explain", json=payload, headers=auth)
        _error(r, status, needle)
    for raw, ctype in [(b"{not json", "application/json"), (b"", "application/json"), (b"features=1", "text/plain")]:
        r = await c.post("/v1/explain", content=raw, headers={**auth, "Content-Type": ctype})
        assert 400 <= r.status_code < 500, r.text
        assert r.json()["message"]
    # non-finite numbers (Python's json writes NaN/Infinity tokens)
    r = await c.post("/v1/explain", content=json.dumps({"features": [float("inf")] * dim}),
                     headers={**auth, "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 422, r.text


async def test_body_size_limit(make_settings: Callable[..., ExplainerSettings], tokens: Tokens) -> None:
    async with serve(make_settings(max_body_bytes=4096)) as api:
        big = {"features": [0.123456789] * 2000}
        r = await api.client.post("/v1/explain", json=big, headers=tokens.auth())
        _error(r, 413, "over 4096 bytes")

        async def chunks():  # no Content-Length: the limit applies while streaming
            for _ in range(10):
                yield b"x" * 1000

        r = await api.client.post("/v1/explain", content=chunks(),
                                  headers={**tokens.auth(), "Content-Type": "application/json"})  # fmt: skip
        _error(r, 413, "over 4096 bytes")
        bad_length = {**tokens.auth(), "Content-Length": "abc", "Content-Type": "application/json"}
        r = await api.client.post("/v1/explain", content=b"{}", headers=bad_length)
        assert r.status_code == 400


async def test_unknown_routes_and_methods_are_json(api: Api, tokens: Tokens) -> None:
    _error(await api.client.get("/v2/nothing", headers=tokens.auth()), 404, "Not Found")
    _error(await api.client.delete("/v1/models", headers=tokens.auth()), 405, "Method Not Allowed")
    r = await api.client.get("/v1/pods/team-a/miner-1/explanation?model=nope", headers=tokens.auth())
    _error(r, 404, "no model named 'nope'")


async def test_no_model_loaded(
    make_settings: Callable[..., ExplainerSettings], tokens: Tokens, tmp_path: object
) -> None:
    from pathlib import Path

    async with serve(make_settings(models=[Path("/nonexistent/model")])) as api:
        ready = await api.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["ready"] is False
        models = (await api.client.get("/v1/models", headers=tokens.auth())).json()
        assert models["models"] == []
        assert "not a model artifact" in models["errors"][0]
        r = await api.client.post("/v1/explain", json={"features": [0.0]}, headers=tokens.auth())
        _error(r, 503, "no model is loaded")


class BrokenBackend:
    """An explanation library with a bug (the real one has none we could trigger on purpose)."""

    def load(self, artifact_dir: object, method: str, **params: object) -> BrokenBackend:
        return self

    def explain(self, x: object, *, window_id: str = "", top: int = 10, ids: object = None) -> object:
        raise KeyError("secret internal detail /etc/minerlens")

    def render_png(self, explanation: object) -> bytes:
        raise AssertionError


async def test_internal_errors_hide_the_details(
    make_settings: Callable[..., ExplainerSettings], tokens: Tokens, miner_windows: list[FeatureWindow]
) -> None:
    async with serve(make_settings(), backend=BrokenBackend()) as api:
        r = await api.client.post("/v1/explain", json={"window": miner_windows[0].model_dump(mode="json")},
                                  headers=tokens.auth())  # fmt: skip
        assert r.status_code == 500
        doc = r.json()
        assert doc["error"] == "internal"
        assert "reference" in doc["message"]
        assert "secret" not in r.text
        assert "KeyError" not in r.text
        assert "Traceback" not in r.text
        # the next identical request is tried again (a failure is not cached)
        again = await api.client.post("/v1/explain", json={"window": miner_windows[0].model_dump(mode="json")},
                                      headers=tokens.auth())  # fmt: skip
        assert again.status_code == 500


async def test_misconfigured_method_parameters_are_a_503_with_the_reason(
    make_settings: Callable[..., ExplainerSettings], tokens: Tokens, miner_windows: list[FeatureWindow]
) -> None:
    async with serve(make_settings(method_params={"lime": {"no_such_parameter": 1}})) as api:
        body = {"method": "lime", "window": miner_windows[0].model_dump(mode="json")}
        r = await api.client.post("/v1/explain", json=body, headers=tokens.auth())
        _error(r, 503, "cannot load the lime explainer", "no_such_parameter")
        ok = await api.client.post("/v1/explain", json={**body, "method": "shap"}, headers=tokens.auth())
        assert ok.status_code == 200
