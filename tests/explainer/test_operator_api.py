"""Suppressions and feedback through the REST API: stored in Redis, published for the scorer and audited on
the live broker (unique topics); refused without the admin role, for hostile input, and undone when Kafka
does not take them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from minerlens_core.schemas.windows import FeatureWindow
from minerlens_core.settings import KafkaSettings
from minerlens_core.suppressions import SuppressionRule
from minerlens_explainer.feedback_export import export_feedback
from minerlens_explainer.naming import PodKey
from minerlens_explainer.settings import ExplainerSettings

from tests.explainer.conftest import Tokens, serve
from tests.explainer.factory import pod_ref
from tests.explainer.operator_data import seed_alert
from tests.integration.services import require_kafka
from tests.kafka_io import read_records

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


def _topics(tag: str) -> dict[str, str]:
    return {"audit_topic": f"test.audit.{tag}", "suppressions_topic": f"test.suppressions.{tag}"}


def _expiry(days: float = 7) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def test_suppressions_are_stored_published_and_audited(
    make_settings: Callable[..., ExplainerSettings], tokens: Tokens
) -> None:
    kafka = KafkaSettings(bootstrap=require_kafka(), compression="none")
    tag = uuid.uuid4().hex[:8]
    settings = make_settings(**_topics(tag))
    async with serve(settings, kafka=kafka) as api:
        c = api.client
        body = {"namespace": "batch", "process": "ffmpeg", "reason": "nightly transcoding", "owner": "media-team",
                "expires_at": _expiry()}  # fmt: skip
        r = await c.post("/v1/admin/suppressions", json=body, headers=tokens.auth("read"))
        assert r.status_code == 403
        r = await c.post("/v1/admin/suppressions", json=body,
                         headers={**tokens.auth("admin"), "X-Minerlens-Operator": "alice"})  # fmt: skip
        assert r.status_code == 201, r.text
        rule = SuppressionRule.model_validate(r.json())
        assert rule.namespace == "batch"
        assert rule.created_by.startswith("alice (")
        assert tokens.admin not in r.text

        listed = (await c.get("/v1/suppressions", headers=tokens.auth())).json()
        assert [x["id"] for x in listed["suppressions"]] == [rule.id]
        dup = await c.post("/v1/admin/suppressions", json={**body, "id": rule.id}, headers=tokens.auth("admin"))
        assert dup.status_code == 409

        r = await c.delete(f"/v1/admin/suppressions/{rule.id}", headers=tokens.auth("admin"))
        assert r.status_code == 200, r.text
        assert (await c.get("/v1/suppressions", headers=tokens.auth())).json()["count"] == 0
        assert (await c.delete(f"/v1/admin/suppressions/{rule.id}", headers=tokens.auth("admin"))).status_code == 404

    published = await read_records(kafka, settings.suppressions_topic, expect=2)
    assert [(p.key.decode(), p.value is None) for p in published] == [(rule.id, False), (rule.id, True)]
    assert SuppressionRule.model_validate_json(published[0].value) == rule
    audit = await read_records(kafka, settings.audit_topic, expect=2)
    records = [json.loads(a.value) for a in audit]
    assert [a["action"] for a in records] == ["suppression.create", "suppression.delete"]
    assert all(a["actor"]["name"] == n for a, n in zip(records, ["alice", "api"], strict=True))
    assert all(a["kind"] == "operator_action" and a["target"] == rule.id for a in records)
    assert all(tokens.admin not in a.value.decode() for a in audit)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"namespace": "", "process": ""}, "at least one of"),
        ({"process": "*"}, "match everything"),
        ({"namespace": "", "image": "", "process": "xmrig"}, "alone is refused"),
        ({"image": "ghcr.io/*/x"}, "only at the end"),
        ({"selector": "app=a b"}, "label selector"),
        ({"expires_at": "2020-01-01T00:00:00+00:00"}, "in the past"),
        ({"expires_at": _expiry(400)}, "within 90 days"),
        ({"reason": "x\u0000y"}, "control character"),
        ({"namespace": "Bad_NS"}, "namespace"),
        ({"owner": ""}, "owner"),
    ],
)
async def test_bad_suppressions_are_refused(
    make_settings: Callable[..., ExplainerSettings], tokens: Tokens, change: dict[str, str], fragment: str
) -> None:
    body = {"namespace": "batch", "process": "ffmpeg", "reason": "r", "owner": "o", "expires_at": _expiry()}
    async with serve(make_settings(**_topics(uuid.uuid4().hex[:8])),
                     kafka=KafkaSettings(bootstrap="127.0.0.1:1")) as api:  # fmt: skip
        r = await api.client.post("/v1/admin/suppressions", json={**body, **change}, headers=tokens.auth("admin"))
        assert r.status_code == 422, r.text
        assert fragment in r.text
        assert (await api.client.get("/v1/suppressions", headers=tokens.auth())).json()["count"] == 0


async def test_kafka_down_undoes_the_change(
    make_settings: Callable[..., ExplainerSettings], tokens: Tokens, miner_windows: list[FeatureWindow]
) -> None:
    settings = make_settings(publish_timeout_s=1.0, **_topics(uuid.uuid4().hex[:8]))
    async with serve(settings, kafka=KafkaSettings(bootstrap="127.0.0.1:1")) as api:
        body = {"namespace": "batch", "reason": "r", "owner": "o", "expires_at": _expiry()}
        r = await api.client.post("/v1/admin/suppressions", json=body, headers=tokens.auth("admin"))
        assert r.status_code == 503, r.text
        assert (await api.client.get("/v1/suppressions", headers=tokens.auth())).json()["count"] == 0
        await seed_alert(api.runtime, miner_windows[:6], pod_ref("team-a", "miner-1"))
        fb = {"label": "miner", "reason": "confirmed"}
        r = await api.client.post("/v1/admin/pods/team-a/miner-1/feedback", json=fb, headers=tokens.auth("admin"))
        assert r.status_code == 503
        assert (await api.client.get("/v1/feedback", headers=tokens.auth())).json()["count"] == 0


async def test_feedback_on_an_alert(
    make_settings: Callable[..., ExplainerSettings], tokens: Tokens, miner_windows: list[FeatureWindow], tmp_path: Path
) -> None:
    kafka = KafkaSettings(bootstrap=require_kafka(), compression="none")
    settings = make_settings(**_topics(uuid.uuid4().hex[:8]))
    async with serve(settings, kafka=kafka) as api:
        c = api.client
        await seed_alert(api.runtime, miner_windows[:6], pod_ref("team-a", "miner-1"))
        body = {"label": "false_positive", "reason": "our video encoder"}
        assert (await c.post("/v1/admin/pods/team-a/miner-1/feedback", json=body,
                             headers=tokens.auth("read"))).status_code == 403  # fmt: skip
        assert (await c.post("/v1/admin/pods/team-a/nobody/feedback", json=body,
                             headers=tokens.auth("admin"))).status_code == 404  # fmt: skip
        bad = await c.post("/v1/admin/pods/team-a/miner-1/feedback", json={**body, "label": "maybe"},
                           headers=tokens.auth("admin"))  # fmt: skip
        assert bad.status_code == 422
        r = await c.post("/v1/admin/pods/team-a/miner-1/feedback", json=body, headers=tokens.auth("admin"))
        assert r.status_code == 201, r.text
        fb = r.json()
        assert fb["alert_id"] == "alert-1"
        assert fb["window_id"] == miner_windows[3].window_id  # the window that opened the alert
        assert fb["window_ids"] == [w.window_id for w in miner_windows[2:5]]
        assert fb["by"]["via"] == "api"
        assert len(fb["by"]["token_id"]) == 12
        listed = (await c.get("/v1/feedback?alert_id=alert-1", headers=tokens.auth())).json()
        assert [f["id"] for f in listed["feedback"]] == [fb["id"]]
        assert (await c.get("/v1/feedback?alert_id=other", headers=tokens.auth())).json()["count"] == 0

        # the pod store's windows expire (WINDOW_TTL_S after the pod's last message); the judged ones were pinned
        store = api.runtime.store
        gone = [k for k in await store.link.call(lambda r: r.keys(f"{store.prefix}pod:*")) if k.endswith(b":wb")]
        assert gone
        await store.link.call(lambda r: r.delete(*gone))
        assert await store.window(PodKey("team-a", "miner-1"), miner_windows[3].window_id) is None

        out = tmp_path / "feedback.jsonl"
        counts = await export_feedback(api.runtime.ops, api.runtime.store, out)
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert {x["window"]["window_id"] for x in lines} == {w.window_id for w in miner_windows[2:5]}
        assert [x["window"]["features"] for x in lines if x["window"]["window_id"] == miner_windows[3].window_id] == [
            json.loads(miner_windows[3].model_dump_json())["features"]
        ]
        assert {x["label"] for x in lines} == {0}  # a false positive: benign windows
        assert counts.missing == 0
        assert counts.by_label == {0: 3}
    audit = await read_records(kafka, settings.audit_topic, expect=1)
    record = json.loads(audit[0].value)
    assert record["action"] == "feedback.create"
    assert record["target"] == "team-a/miner-1"
    assert record["detail"]["label"] == "false_positive"
