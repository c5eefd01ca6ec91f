"""The policy file, namespace allow/deny lists, protected pods and rate limits (dry-run: no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from minerlens_core.errors import ConfigurationError
from minerlens_responder.policy import PROTECTED_NAMESPACES, Action, load_policy, parse_policy
from minerlens_responder.responder import Responder

from tests.responder.alerts import make_finding

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_POLICY = ROOT / "deploy" / "helm" / "minerlens" / "files" / "responder-policy.yaml"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


POLICY = """
namespaces:
  allow: ["shop", "batch-*", "kube-system"]
  deny: ["batch-secret"]
rate_limits: {global_per_minute: 3, per_alert_cooldown_s: 300}
rules:
  - name: critical
    match: {min_severity: Critical, namespaces: ["*"]}
    actions: [annotate, event, isolate, evict]
  - name: high-shop
    match: {min_severity: 4, min_score: 0.9, namespaces: ["shop"], pod_labels: {tier: web}}
    actions: [annotate, event]
  - name: closed
    match: {activities: [close]}
    actions: [event]
"""


def make(clock: Clock | None = None) -> Responder:
    return Responder(parse_policy(POLICY), own_namespace="minerlens", monotonic=clock or Clock())


def test_parse_names_and_ids() -> None:
    pol = parse_policy(POLICY)
    assert pol.mode == "dry-run"
    assert pol.rules[0].match.min_severity == 5
    assert pol.rules[1].match.min_severity == 4
    assert pol.rules[2].match.activities == (3,)
    assert pol.rules[0].ordered_actions() == (Action.annotate, Action.event, Action.isolate, Action.evict)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mode: yolo", "mode"),
        ("rules: [{name: a, actions: [nuke]}]", "rules.0.actions.0"),
        ("rules: [{name: a, actions: []}]", "rules.0.actions"),
        ("rules: [{name: a, actions: [evict, evict]}]", "names an action twice"),
        ("rules: [{name: a, actions: [evict]}, {name: a, actions: [event]}]", "duplicate rule names: a"),
        ("rules: [{name: a, match: {min_severity: Scary}, actions: [evict]}]", "unknown severity 'Scary'"),
        ("rules: [{name: a, match: {min_score: 2}, actions: [evict]}]", "min_score"),
        ("rate_limits: {global_per_minute: 0}", "global_per_minute"),
        ("rate_limit: {global_per_minute: 5}", "rate_limit: Extra inputs are not permitted"),
        ("rules: [{name: a, match: {namespace: [x]}, actions: [evict]}]", "match.namespace"),
        ("- a list", "must be a mapping"),
        ("rules: [", "not valid YAML"),
    ],
)
def test_invalid_policies_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=r"invalid policy|must be a mapping|not valid YAML") as err:
        parse_policy(text, "p.yaml")
    assert message in str(err.value)
    assert str(err.value).startswith("p.yaml")


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read the policy file"):
        load_policy(tmp_path / "nope.yaml")


def test_shipped_policy_is_valid_and_dry_run() -> None:
    pol = load_policy(SHIPPED_POLICY)
    assert pol.mode == "dry-run"
    assert pol.rules
    for ns in ("kube-system", "kube-flannel", "minerlens", "minerlens-node", "kafka"):
        assert pol.namespace_refusal(ns) is not None, ns
    assert pol.namespace_refusal("shop") is None


async def test_first_matching_rule_decides() -> None:
    r = make()
    crit = await r.handle(make_finding(alert_id="a1", severity_id=5, namespace="batch-7"))
    assert (crit.rule, crit.outcome) == ("critical", "dry_run")
    assert [a.action for a in crit.actions] == ["annotate", "event", "isolate", "evict"]
    high = await r.handle(make_finding(alert_id="a2", severity_id=4, labels={"tier": "web"}))
    assert (high.rule, [a.action for a in high.actions]) == ("high-shop", ["annotate", "event"])
    unlabelled = await r.handle(make_finding(alert_id="a3", severity_id=4))
    assert (unlabelled.rule, unlabelled.outcome) == (None, "no_match")
    low_score = await r.handle(make_finding(alert_id="a4", severity_id=4, score=0.5, labels={"tier": "web"}))
    assert low_score.outcome == "no_match"
    no_score = await r.handle(make_finding(alert_id="a5", severity_id=4, score=None, labels={"tier": "web"}))
    assert no_score.outcome == "no_match"
    closed = await r.handle(make_finding(alert_id="a2", activity_id=3, severity_id=1))
    assert (closed.rule, closed.outcome) == ("closed", "dry_run")


@pytest.mark.parametrize(
    ("namespace", "why"),
    [
        ("kube-system", "protected"),  # allowed by the file, protected anyway
        ("kube-node-lease", "protected"),
        ("minerlens", "protected"),  # the responder's own namespace
        ("batch-secret", "deny list"),
        ("default", "not on the allow list"),
    ],
)
async def test_namespaces_never_touched(namespace: str, why: str) -> None:
    record = await make().handle(make_finding(severity_id=5, namespace=namespace))
    assert record.outcome == "denied"
    assert record.rule == "critical"
    assert why in record.reason
    assert record.actions == []


def test_protected_namespaces_cover_the_control_plane() -> None:
    assert set(PROTECTED_NAMESPACES) == {"kube-system", "kube-public", "kube-node-lease"}


async def test_protected_pod_label_denies() -> None:
    record = await make().handle(make_finding(severity_id=5, labels={"minerlens.io/protected": "true"}))
    assert record.outcome == "denied"
    assert "minerlens.io/protected=true" in record.reason


async def test_alert_without_pod_name_is_skipped() -> None:
    record = await make().handle(make_finding(severity_id=5, pod=""))
    assert record.outcome == "skipped"


async def test_global_rate_limit_per_minute() -> None:
    clock = Clock()
    r = make(clock)
    outcomes = [(await r.handle(make_finding(alert_id=f"g{i}", severity_id=5))).outcome for i in range(5)]
    assert outcomes == ["dry_run", "dry_run", "dry_run", "rate_limited", "rate_limited"]
    limited = await r.handle(make_finding(alert_id="g9", severity_id=5))
    assert "global limit reached: 3 alerts" in limited.reason
    clock.t += 60.0  # the window slides
    assert (await r.handle(make_finding(alert_id="g10", severity_id=5))).outcome == "dry_run"


async def test_per_alert_cooldown_escalation_and_no_repeats() -> None:
    clock = Clock()
    r = make(clock)
    first = await r.handle(make_finding(alert_id="p1", severity_id=4, labels={"tier": "web"}))
    assert first.outcome == "dry_run"
    clock.t += 10
    again = await r.handle(make_finding(alert_id="p1", severity_id=4, activity_id=2, labels={"tier": "web"}))
    assert again.outcome == "rate_limited"
    assert "cooldown 300s" in again.reason
    # escalation to Critical passes the cooldown, and only the new actions are planned
    clock.t += 10
    worse = await r.handle(make_finding(alert_id="p1", severity_id=5, activity_id=2))
    assert worse.outcome == "dry_run"
    assert [(a.action, a.outcome) for a in worse.actions] == [
        ("annotate", "repeat"),
        ("event", "repeat"),
        ("isolate", "planned"),
        ("evict", "planned"),
    ]
    # after the cooldown, nothing left to do for this alert
    clock.t += 301
    later = await r.handle(make_finding(alert_id="p1", severity_id=5, activity_id=2))
    assert later.outcome == "skipped"
    assert "already taken" in later.reason


async def test_record_carries_alert_id_and_explanation() -> None:
    record = await make().handle(make_finding(alert_id="x1", severity_id=5))
    assert record.alert_id == "x1"
    assert record.finding_uid == "x1-1-1"
    assert record.score == pytest.approx(0.97)
    assert record.explanation.reasons == ["futex rate 9100/s (baseline 40)", "sched_yield 20% of calls"]
    assert record.explanation.explain_path == "/v1/pods/shop/web-5d9f-abcde/explanation?window=w-x1"
    line = record.log_line()
    assert "alert x1 shop/web-5d9f-abcde" in line
    assert "futex rate 9100/s" in line
    assert "dry_run" in line


async def test_malformed_minerlens_block_does_not_crash() -> None:
    finding = make_finding(severity_id=5)
    finding.unmapped["minerlens"] = {"reasons": "not a list", "score": "high", "labels": ["x"]}
    record = await make().handle(finding)
    assert record.score is None  # no usable score: rules with min_score cannot match
    assert record.explanation.reasons == []
    assert record.outcome == "dry_run"  # the critical rule has no min_score
    finding.unmapped["minerlens"] = "garbage"
    assert (await make().handle(finding)).alert_id == "al-0001"
