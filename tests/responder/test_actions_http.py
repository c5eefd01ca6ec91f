"""Every response action against a fake Kubernetes API over real HTTP, through the real client.

Each test checks the exact requests the responder sent (method, path, query, content type, body),
what the audit record says, and what changed in the fake cluster.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from minerlens_responder.kube_api import KubeApi
from minerlens_responder.policy import Policy, parse_policy
from minerlens_responder.responder import Responder

from tests.responder.alerts import POD_UID, make_finding
from tests.responder.fake_kube import TOKEN, FakeKube, make_pod

NOW = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
POD = "web-5d9f-abcde"
POD_PATH = f"/api/v1/namespaces/shop/pods/{POD}"


def policy(actions: str, mode: str = "enforce", extra: str = "") -> Policy:
    return parse_policy(
        f"""
mode: {mode}
{extra}
rules:
  - name: high-miners
    match: {{min_severity: High, min_score: 0.9, namespaces: ["shop", "batch-*"]}}
    actions: [{actions}]
"""
    )


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[FakeKube]:
    fake = FakeKube()
    await fake.start()
    fake.add_pod(make_pod(POD, POD_UID))
    fake.add_deployment("shop", "web", "web-5d9f", replicas=3)
    yield fake
    await fake.close()


@pytest.fixture
async def api(kube: FakeKube, tmp_path: Path) -> AsyncIterator[KubeApi]:
    client = await KubeApi.connect(kube.kubeconfig(tmp_path / "kubeconfig"))
    yield client
    await client.close()


def responder(pol: Policy, api: KubeApi | None, **kw: object) -> Responder:
    return Responder(pol, api=api, instance="responder-0", own_namespace="minerlens", clock=lambda: NOW, **kw)  # type: ignore[arg-type]


async def test_annotate_patches_labels_and_annotations(kube: FakeKube, api: KubeApi) -> None:
    record = await responder(policy("annotate"), api).handle(make_finding())

    assert record.outcome == "executed", record.reason
    assert kube.lines == [("GET", POD_PATH), ("PATCH", POD_PATH)]
    get, patch = kube.requests
    assert get.auth == patch.auth == f"Bearer {TOKEN}"
    assert patch.content_type == "application/merge-patch+json"
    assert patch.query == {}
    assert patch.body == {
        "metadata": {
            "labels": {"minerlens.io/suspect": "true"},
            "annotations": {
                "minerlens.io/alert-id": "al-0001",
                "minerlens.io/severity": "High",
                "minerlens.io/flagged-at": "2025-01-02T03:04:05Z",
                "minerlens.io/score": "0.970",
                "minerlens.io/explain": "/v1/pods/shop/web-5d9f-abcde/explanation?window=w-al-0001",
                "minerlens.io/summary": "Suspected cryptominer in pod shop/web-5d9f-abcde — "
                "futex rate 9100/s (baseline 40); sched_yield 20% of calls",
            },
        }
    }
    labels = kube.pods[("shop", POD)]["metadata"]["labels"]
    assert labels == {"app": "web", "minerlens.io/suspect": "true"}
    assert [(a.action, a.outcome) for a in record.actions] == [("lookup", "done"), ("annotate", "done")]
    assert [(r.method, r.path, r.status) for r in record.actions[1].requests] == [("PATCH", POD_PATH, 200)]
    assert record.explanation.explain_path == "/v1/pods/shop/web-5d9f-abcde/explanation?window=w-al-0001"


async def test_event_is_an_events_k8s_io_warning_about_the_pod(kube: FakeKube, api: KubeApi) -> None:
    record = await responder(policy("event"), api).handle(make_finding())

    assert record.outcome == "executed", record.reason
    assert kube.lines == [("GET", POD_PATH), ("POST", "/apis/events.k8s.io/v1/namespaces/shop/events")]
    post = kube.requests[1]
    assert post.content_type == "application/json"
    assert post.body == {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"generateName": f"{POD}.minerlens-", "namespace": "shop"},
        "eventTime": "2025-01-02T03:04:05.678901Z",
        "reportingController": "minerlens.io/responder",
        "reportingInstance": "responder-0",
        "action": "Flagged",
        "reason": "CryptominerSuspected",
        "type": "Warning",
        "regarding": {"apiVersion": "v1", "kind": "Pod", "namespace": "shop", "name": POD, "uid": POD_UID},
        "note": "minerlens alert al-0001: suspected cryptominer (severity High, score 0.970). "
        "Suspected cryptominer in pod shop/web-5d9f-abcde — futex rate 9100/s (baseline 40); "
        "sched_yield 20% of calls Why: /v1/pods/shop/web-5d9f-abcde/explanation?window=w-al-0001",
    }
    assert len(kube.events) == 1
    assert record.actions[1].detail == f"Warning event CryptominerSuspected {POD}.minerlens-x7k2q"


async def test_evict_posts_an_eviction_with_the_uid_precondition(kube: FakeKube, api: KubeApi) -> None:
    record = await responder(policy("evict"), api).handle(make_finding())

    assert record.outcome == "executed", record.reason
    assert kube.lines == [("GET", POD_PATH), ("POST", f"{POD_PATH}/eviction")]
    assert kube.requests[1].body == {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": POD, "namespace": "shop"},
        "deleteOptions": {"preconditions": {"uid": POD_UID}},
    }
    assert ("shop", POD) not in kube.pods


async def test_evict_blocked_by_a_disruption_budget_is_reported_not_forced(kube: FakeKube, api: KubeApi) -> None:
    kube.pdb_blocks.add(("shop", POD))
    record = await responder(policy("annotate, evict"), api).handle(make_finding())

    assert record.outcome == "partial"
    assert [(a.action, a.outcome) for a in record.actions] == [
        ("lookup", "done"),
        ("annotate", "done"),
        ("evict", "blocked"),
    ]
    assert "disruption budget" in record.actions[2].detail
    assert ("shop", POD) in kube.pods
    assert [r.status for r in record.actions[2].requests] == [429]


async def test_scale_to_zero_resolves_replicaset_to_deployment(kube: FakeKube, api: KubeApi) -> None:
    record = await responder(policy("scale_to_zero"), api).handle(make_finding())

    assert record.outcome == "executed", record.reason
    scale = "/apis/apps/v1/namespaces/shop/deployments/web/scale"
    assert kube.lines == [
        ("GET", POD_PATH),
        ("GET", "/apis/apps/v1/namespaces/shop/replicasets/web-5d9f"),
        ("GET", scale),
        ("PATCH", scale),
    ]
    patch = kube.requests[3]
    assert patch.content_type == "application/merge-patch+json"
    assert patch.body == {"spec": {"replicas": 0}}
    assert kube.scales[("deployments", "shop", "web")] == 0
    act = record.actions[1]
    assert act.target == "deployments/shop/web"
    assert "3 -> 0" in act.detail
    assert "--replicas=3" in act.detail


async def test_scale_to_zero_statefulset_and_already_zero(kube: FakeKube, api: KubeApi) -> None:
    kube.add_pod(make_pod("db-0", "uid-db-0", owner=("StatefulSet", "db")))
    kube.scales[("statefulsets", "shop", "db")] = 0
    r = responder(policy("scale_to_zero"), api)
    record = await r.handle(make_finding(alert_id="al-db", pod="db-0", pod_uid="uid-db-0"))

    assert kube.lines == [
        ("GET", "/api/v1/namespaces/shop/pods/db-0"),
        ("GET", "/apis/apps/v1/namespaces/shop/statefulsets/db/scale"),
    ]
    assert record.actions[1].outcome == "already_done"
    assert record.outcome == "executed"


async def test_scale_to_zero_of_a_bare_pod_is_not_applicable(kube: FakeKube, api: KubeApi) -> None:
    kube.add_pod(make_pod("bare", "uid-bare", owner=None))
    record = await responder(policy("scale_to_zero"), api).handle(
        make_finding(alert_id="al-bare", pod="bare", pod_uid="uid-bare")
    )
    assert kube.lines == [("GET", "/api/v1/namespaces/shop/pods/bare")]
    assert record.actions[1].outcome == "not_applicable"
    assert "bare pod" in record.actions[1].detail


async def test_isolate_creates_the_quarantine_policy_then_labels_the_pod(kube: FakeKube, api: KubeApi) -> None:
    r = responder(policy("isolate"), api)
    record = await r.handle(make_finding())

    assert record.outcome == "executed", record.reason
    np_path = "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies"
    assert kube.lines == [("GET", POD_PATH), ("POST", np_path), ("PATCH", POD_PATH)]
    assert kube.requests[1].body == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "minerlens-quarantine",
            "namespace": "shop",
            "labels": {"app.kubernetes.io/managed-by": "minerlens-responder"},
        },
        "spec": {
            "podSelector": {"matchLabels": {"minerlens.io/quarantine": "true"}},
            "policyTypes": ["Egress"],
            "egress": [],
        },
    }
    assert kube.requests[2].body == {
        "metadata": {
            "labels": {"minerlens.io/quarantine": "true"},
            "annotations": {"minerlens.io/quarantined-by": "al-0001"},
        }
    }
    assert kube.pods[("shop", POD)]["metadata"]["labels"]["minerlens.io/quarantine"] == "true"

    # a second pod in the same namespace: the policy exists (409) and that is fine
    kube.add_pod(make_pod("web-5d9f-fghij", "uid-2"))
    kube.requests.clear()
    second = await r.handle(make_finding(alert_id="al-0002", pod="web-5d9f-fghij", pod_uid="uid-2"))
    assert second.outcome == "executed", second.reason
    assert [r.status for r in second.actions[1].requests] == [409, 200]
    assert "already present" in second.actions[1].detail


async def test_isolate_can_also_deny_ingress(kube: FakeKube, api: KubeApi) -> None:
    pol = policy("isolate", extra="isolation: {deny_ingress: true}")
    await responder(pol, api).handle(make_finding())
    spec = kube.requests[1].body["spec"]
    assert spec == {
        "podSelector": {"matchLabels": {"minerlens.io/quarantine": "true"}},
        "policyTypes": ["Ingress", "Egress"],
        "egress": [],
        "ingress": [],
    }


async def test_all_actions_in_order(kube: FakeKube, api: KubeApi) -> None:
    record = await responder(policy("evict, scale_to_zero, event, isolate, annotate"), api).handle(make_finding())
    assert record.outcome == "executed", record.reason
    assert [a.action for a in record.actions] == ["lookup", "annotate", "event", "isolate", "scale_to_zero", "evict"]
    assert [m for m, _ in kube.lines] == ["GET", "PATCH", "POST", "POST", "PATCH", "GET", "GET", "PATCH", "POST"]


async def test_server_dry_run_sends_dry_run_all_and_changes_nothing(kube: FakeKube, api: KubeApi) -> None:
    pol = policy("annotate, event, isolate, scale_to_zero, evict", mode="server-dry-run")
    record = await responder(pol, api).handle(make_finding())

    assert record.outcome == "server_dry_run", record.reason
    writes = [r for r in kube.requests if r.method != "GET"]
    assert len(writes) == 6
    assert all(r.query == {"dryRun": "All"} for r in writes)
    assert all(r.query == {} for r in kube.requests if r.method == "GET")
    assert {a.outcome for a in record.actions[1:]} == {"server_dry_run"}
    assert all(q.path.endswith("?dryRun=All") for a in record.actions[1:] for q in a.requests if q.method != "GET")
    # nothing persisted
    assert kube.pods[("shop", POD)]["metadata"]["labels"] == {"app": "web"}
    assert kube.scales[("deployments", "shop", "web")] == 3
    assert not kube.network_policies
    assert not kube.events


async def test_mode_override_wins_over_the_policy(kube: FakeKube, api: KubeApi) -> None:
    record = await responder(policy("evict"), api, mode="server-dry-run").handle(make_finding())
    assert record.mode == "server-dry-run"
    assert kube.requests[-1].query == {"dryRun": "All"}
    assert ("shop", POD) in kube.pods


async def test_dry_run_sends_nothing(kube: FakeKube) -> None:
    record = await responder(policy("annotate, evict", mode="dry-run"), None).handle(make_finding())
    assert record.outcome == "dry_run"
    assert [(a.action, a.outcome) for a in record.actions] == [("annotate", "planned"), ("evict", "planned")]
    assert kube.requests == []


async def test_default_mode_is_dry_run(kube: FakeKube) -> None:
    pol = parse_policy("rules: [{name: all, actions: [evict]}]")
    assert pol.mode == "dry-run"
    record = await responder(pol, None).handle(make_finding())
    assert record.outcome == "dry_run"
    assert kube.requests == []


async def test_gone_pod_and_reused_name_are_skipped(kube: FakeKube, api: KubeApi) -> None:
    r = responder(policy("evict"), api)
    gone = await r.handle(make_finding(alert_id="al-gone", pod="nope", pod_uid="uid-nope"))
    assert gone.outcome == "skipped"
    assert "no longer exists" in gone.reason
    kube.add_pod(make_pod("reused", "uid-new"))
    reused = await r.handle(make_finding(alert_id="al-reused", pod="reused", pod_uid="uid-old"))
    assert reused.outcome == "skipped"
    assert "another pod" in reused.reason
    assert [m for m, _ in kube.lines] == ["GET", "GET"]  # no write reached the API


async def test_protected_label_on_the_live_pod_denies(kube: FakeKube, api: KubeApi) -> None:
    kube.add_pod(make_pod("vip", "uid-vip", labels={"minerlens.io/protected": "true"}))
    record = await responder(policy("evict"), api).handle(make_finding(alert_id="al-vip", pod="vip", pod_uid="uid-vip"))
    assert record.outcome == "denied"
    assert kube.lines == [("GET", "/api/v1/namespaces/shop/pods/vip")]


async def test_api_errors_are_audited_as_failures(kube: FakeKube, api: KubeApi) -> None:
    kube.fail_all_writes = 1
    record = await responder(policy("annotate, event"), api).handle(make_finding())
    assert record.outcome == "partial"
    assert record.actions[1].outcome == "failed"
    assert "500" in record.actions[1].detail
    assert "etcd is having a bad day" in record.actions[1].detail
    assert record.actions[2].outcome == "done"


async def test_close_event_is_normal(kube: FakeKube, api: KubeApi) -> None:
    pol = parse_policy("mode: enforce\nrules: [{name: closed, match: {activities: [close]}, actions: [event]}]")
    record = await responder(pol, api).handle(make_finding(activity_id=3, severity_id=1))
    assert record.outcome == "executed", record.reason
    body = kube.requests[1].body
    assert (body["type"], body["reason"], body["action"]) == ("Normal", "CryptominerAlertClosed", "Closed")
    assert body["note"].startswith("minerlens alert al-0001: alert closed (severity Informational")
