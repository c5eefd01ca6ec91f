"""The pod store (real Redis) fed by the ingestion logic, and the pod routes on top of it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from minerlens_core.schemas.windows import FeatureWindow, ModelRef
from minerlens_explainer.app import CACHE_HEADER
from minerlens_explainer.ingest import InvalidMessage
from minerlens_explainer.settings import ExplainerSettings

from tests.explainer.conftest import Api, Tokens, serve
from tests.explainer.factory import finding, pod_ref, verdict_for

pytestmark = pytest.mark.redis

MODEL = ModelRef(name="test-xgboost", version="0.1.0")


async def feed(api: Api, windows: list[FeatureWindow], scores: list[float]) -> None:
    ing = api.runtime.ingestor()
    s = api.runtime.settings
    for w, score in zip(windows, scores, strict=True):
        assert await ing.handle(s.windows_topic, w.model_dump_json().encode()) == "stored"
        v = verdict_for(w, score, MODEL)
        assert await ing.handle(s.verdicts_topic, v.model_dump_json().encode()) == "stored"


async def test_pods_listing_history_and_default_windows(
    make_settings: Callable[..., ExplainerSettings], tokens: Tokens,
    miner_windows: list[FeatureWindow], benign_windows: list[FeatureWindow],
) -> None:  # fmt: skip
    async with serve(make_settings(max_windows_per_pod=6, max_verdicts_per_pod=8)) as api:
        c, auth = api.client, tokens.auth()
        miner_scores = [0.2, 0.3, 0.95, 0.4, 0.97, 0.5, 0.6, 0.7, 0.99, 0.3]
        await feed(api, miner_windows[:10], miner_scores)
        await feed(api, benign_windows[:3], [0.01, 0.02, 0.03])

        pods = (await c.get("/v1/pods", headers=auth)).json()
        assert pods["count"] == 2
        assert not pods["truncated"]
        by = {p["pod"]: p for p in pods["pods"]}
        assert by["miner-1"]["latest"]["window_id"] == miner_windows[9].window_id  # the newest window's verdict
        assert by["miner-1"]["namespace"] == "team-a"
        assert by["miner-1"]["node"] == "node-1"
        assert by["miner-1"]["alerting"] is False
        assert by["gzip-1"]["alert"] is None
        only_b = (await c.get("/v1/pods?namespace=team-b", headers=auth)).json()
        assert [p["pod"] for p in only_b["pods"]] == ["gzip-1"]

        detail = (await c.get("/v1/pods/team-a/miner-1", headers=auth)).json()
        # bounded per pod: the 8 newest verdicts and the 6 newest windows, newest first
        assert [v["window_id"] for v in detail["verdicts"]] == [w.window_id for w in miner_windows[2:10]][::-1]
        assert [w["window_id"] for w in detail["windows"]] == [w.window_id for w in miner_windows[4:10]][::-1]
        limited = (await c.get("/v1/pods/team-a/miner-1?limit=2", headers=auth)).json()
        assert len(limited["verdicts"]) == 2
        assert len(limited["windows"]) == 2

        # no alert: the highest-scoring stored window (0.99 at index 8; 0.95/0.97 windows were trimmed)
        r = await c.get("/v1/pods/team-a/miner-1/explanation", headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["window"]["source"] == "highest_score"
        assert r.json()["window"]["window_id"] == miner_windows[8].window_id

        # an alert opened by window 6: that window is explained by default
        ids = [w.window_id for w in miner_windows[5:8]]
        alert = finding(pod_ref("team-a", "miner-1"), "alert-1", ids, opened_by=miner_windows[6].window_id)
        assert await api.runtime.ingestor().handle(api.runtime.settings.alerts_topic,
                                                   alert.model_dump_json().encode()) == "stored"  # fmt: skip
        r = await c.get("/v1/pods/team-a/miner-1/explanation?method=lime&top=5", headers=auth)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["window"]["source"] == "alert"
        assert doc["window"]["window_id"] == miner_windows[6].window_id
        assert doc["explanation"]["method"] == "lime"
        assert len(doc["explanation"]["contributions"]) <= 5
        alerting = (await c.get("/v1/pods?alerting=true", headers=auth)).json()
        assert [p["pod"] for p in alerting["pods"]] == ["miner-1"]
        assert alerting["pods"][0]["alert"]["alert_id"] == "alert-1"
        assert alerting["pods"][0]["alert"]["trigger_window_id"] == miner_windows[6].window_id
        quiet = (await c.get("/v1/pods?alerting=false", headers=auth)).json()
        assert [p["pod"] for p in quiet["pods"]] == ["gzip-1"]

        # an explicit window, PNG
        wid = miner_windows[7].window_id
        r = await c.get(f"/v1/pods/team-a/miner-1/explanation?window={wid}&format=png", headers=auth)
        assert r.status_code == 200
        assert r.content.startswith(b"\x89PNG")
        r = await c.get("/v1/pods/team-a/miner-1/explanation", params={"window": wid}, headers=auth)
        assert r.json()["window"]["source"] == "requested"
        assert r.headers[CACHE_HEADER] == "hit", "the PNG request computed and cached the explanation"
        # a window trimmed from the store is gone
        r = await c.get("/v1/pods/team-a/miner-1/explanation", params={"window": miner_windows[0].window_id},
                        headers=auth)  # fmt: skip
        assert r.status_code == 404
        assert "not stored" in r.json()["message"]

        # the alert closes: back to the highest-scoring window
        closed = finding(pod_ref("team-a", "miner-1"), "alert-1", [], close=True)
        await api.runtime.ingestor().handle(api.runtime.settings.alerts_topic, closed.model_dump_json().encode())
        detail = (await c.get("/v1/pods/team-a/miner-1", headers=auth)).json()
        assert detail["alerting"] is False
        assert detail["alert"]["status"] == "closed"
        assert detail["alert"]["trigger_window_id"] == miner_windows[6].window_id
        r = await c.get("/v1/pods/team-a/miner-1/explanation", headers=auth)
        assert r.json()["window"]["source"] == "highest_score"

        assert (await c.get("/v1/pods/team-a/nobody", headers=auth)).status_code == 404
        r = await c.get("/v1/pods/team-a/nobody/explanation", headers=auth)
        assert r.status_code == 404
        assert r.json() == {"error": "not_found", "message": r.json()["message"]}


async def test_pod_known_by_uid_only_and_windows_without_verdicts(
    api: Api, tokens: Tokens, miner_windows: list[FeatureWindow]
) -> None:
    anon = pod_ref("", "", uid="3f2a9c1e-0b7d-4e58-9a61-2c4d8e0f1a2b")
    w = miner_windows[0].model_copy(update={"envelope": miner_windows[0].envelope.model_copy(update={"pod": anon})})
    assert await api.runtime.ingestor().handle(api.runtime.settings.windows_topic, w.model_dump_json().encode())
    r = await api.client.get(f"/v1/pods/uid/{anon.uid}/explanation", headers=tokens.auth())
    assert r.status_code == 200, r.text
    assert r.json()["window"]["source"] == "latest"


async def test_invalid_messages_are_refused_not_stored(api: Api, miner_windows: list[FeatureWindow]) -> None:
    ing, s = api.runtime.ingestor(), api.runtime.settings
    for topic, value, why in [
        (s.windows_topic, b"", "empty"),
        (s.windows_topic, b"{not json", "invalid feature window"),
        (s.windows_topic, miner_windows[0].model_dump_json().replace('"schema_version":1', '"schema_version":2')
         .encode(), "invalid feature window"),
        (s.verdicts_topic, miner_windows[0].model_dump_json().encode(), "invalid verdict"),
        (s.alerts_topic, b'{"class_uid": 2004}', "invalid detection finding"),
        ("some.other.topic", b"{}", "unexpected topic"),
    ]:  # fmt: skip
        with pytest.raises(InvalidMessage, match=why):
            await ing.handle(topic, value)
    records, _ = await api.runtime.store.pods()
    assert records == []
