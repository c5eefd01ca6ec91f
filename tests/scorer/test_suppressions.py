"""Suppression rules: the core matcher (one model for scorer and explainer), the alert engine withholding
and closing alerts a rule covers while still counting the windows, and the scorer following the rules topic
on the live broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from minerlens_core.kafka import make_producer
from minerlens_core.schemas.envelope import ContainerImage, PodRef
from minerlens_core.schemas.windows import ProcessRef
from minerlens_core.settings import KafkaSettings
from minerlens_core.suppressions import RuleSet, RuleSpec, Subject, SuppressionRule, matches, parse_selector
from minerlens_scorer.alerting import AlertEngine
from minerlens_scorer.findings import FindingFactory
from minerlens_scorer.suppression_feed import SuppressionFeed, apply
from pydantic import ValidationError

from tests.integration.services import require_kafka
from tests.scorer.test_alerting import POLICY, T0, activities, feed

NOW = datetime.fromtimestamp(T0, UTC)


def rule(rule_id: str = "r1", *, expires: timedelta = timedelta(days=1), **conditions: str) -> SuppressionRule:
    return SuppressionRule(id=rule_id, reason="known batch job", owner="ops", created_by="alice",
                           created_at=NOW - timedelta(hours=1), expires_at=NOW + expires, **conditions)  # fmt: skip


SUBJECT = Subject(namespace="shop", pod="web-1", labels={"app": "encoder", "tier": "batch"},
                  image_name="ghcr.io/acme/encoder", image_tag="1.2", image_digest="sha256:" + "a" * 64,
                  comm="ffmpeg", exe="/usr/bin/ffmpeg")  # fmt: skip


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ({"namespace": "shop"}, True),
        ({"namespace": "other"}, False),
        ({"selector": "app=encoder,tier"}, True),
        ({"selector": "app=encoder,tier!=batch"}, False),
        ({"selector": "missing"}, False),
        ({"image": "ghcr.io/acme/encoder"}, True),
        ({"image": "ghcr.io/acme/encoder:1.2"}, True),
        ({"image": "ghcr.io/acme/encoder:1.3"}, False),
        ({"image": f"ghcr.io/acme/encoder@sha256:{'a' * 64}"}, True),
        ({"image": "ghcr.io/acme/*"}, True),
        ({"image": "ghcr.io/other/*"}, False),
        ({"namespace": "shop", "process": "ffmpeg"}, True),
        ({"namespace": "shop", "process": "/usr/bin/*"}, True),
        ({"namespace": "shop", "process": "ffmpe"}, False),
        ({"namespace": "shop", "process": "xmrig"}, False),  # every condition must hold
        ({"namespace": "shop", "image": "ghcr.io/acme/*", "process": "ffmpeg"}, True),
    ],
)
def test_matcher(conditions: dict[str, str], expected: bool) -> None:
    assert matches(rule(**conditions), SUBJECT) is expected


def test_an_unknown_image_or_process_never_matches_a_rule_naming_one() -> None:
    bare = Subject(namespace="shop", pod="p")
    assert not matches(rule(image="ghcr.io/*"), bare)
    assert not matches(rule(namespace="shop", process="/usr/bin/*"), bare)


@pytest.mark.parametrize(
    ("conditions", "fragment"),
    [
        ({}, "at least one of"),
        ({"namespace": "a", "process": "*"}, "match everything"),
        ({"process": "ffmpeg"}, "alone is refused"),
        ({"image": "a*b"}, "only at the end"),
        ({"selector": "app=,"}, "empty term"),
        ({"selector": "bad key=1"}, "label"),
        ({"namespace": "UPPER"}, "namespace"),
        ({"namespace": "a", "process": "a b"}, "process"),
    ],
)
def test_rules_that_would_silence_too_much_or_are_malformed_are_refused(
    conditions: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ValidationError, match=fragment):
        rule(**conditions)


def test_selector_syntax() -> None:
    assert [(r.key, r.op, r.value) for r in parse_selector("a=1, b!=2,c==3,d")] == [
        ("a", "=", "1"), ("b", "!=", "2"), ("c", "=", "3"), ("d", "exists", "")]  # fmt: skip


def test_expired_rules_do_not_match_and_rules_expire() -> None:
    rules = RuleSet([rule("old", expires=timedelta(seconds=-1), namespace="shop"), rule("new", namespace="other")])
    assert rules.match(SUBJECT, NOW) is None
    rules.put(rule("now", namespace="shop"))
    assert rules.match(SUBJECT, NOW) is not None
    assert rules.match(SUBJECT, NOW + timedelta(days=2)) is None
    with pytest.raises(ValidationError, match="after created_at"):
        SuppressionRule(**{**rule(namespace="shop").model_dump(), "expires_at": NOW - timedelta(days=2)})
    assert RuleSpec.model_validate({"namespace": "x", "reason": "r", "owner": "o",
                                    "expires_at": NOW.isoformat()}).describe() == "namespace=x"  # fmt: skip


def _engine(rules: RuleSet) -> AlertEngine:
    return AlertEngine(POLICY, FindingFactory(POLICY, "0.1.0"), clock=lambda: float(T0),
                       suppressor=lambda s: rules.match(s, NOW))  # fmt: skip


def test_a_suppressed_pod_raises_no_alert_until_the_rule_goes() -> None:
    rules = RuleSet([rule("shop-batch", namespace="shop")])
    e = _engine(rules)
    assert feed(e, [0.95, 0.95, 0.95, 0.95]) == []  # k of n reached twice: both withheld
    assert e.suppressed == {"shop-batch": 2}
    assert e.open_alerts == {}
    rules.remove("shop-batch")
    assert activities(feed(e, [0.95], start=4)) == ["Create"]  # within one window of the removal
    other = _engine(RuleSet([rule(namespace="elsewhere")]))
    assert activities(feed(other, [0.95, 0.95, 0.95])) == ["Create"]


def test_a_rule_created_while_an_alert_is_open_closes_it_naming_the_rule() -> None:
    rules = RuleSet()
    e = _engine(rules)
    assert activities(feed(e, [0.95, 0.95, 0.95])) == ["Create"]
    rules.put(rule("late", namespace="shop"))
    closed = feed(e, [0.95], start=3)
    assert activities(closed) == ["Close"]
    assert "suppressed by rule late (ops): known batch job" in closed[0].model_dump_json()
    assert feed(e, [0.95, 0.95, 0.95], start=4) == []
    assert e.suppressed["late"] == 2  # the close, and the reopening withheld


def test_a_process_rule_covers_the_alert_whose_evidence_is_that_process() -> None:
    from tests.scorer.test_alerting import verdict

    rules = RuleSet([rule("enc", namespace="shop", process="ffmpeg")])
    e = _engine(rules)

    def proc(i: int, comm: str) -> object:
        v = verdict(i, 0.95)
        return v.model_copy(update={"scope": "process", "process": ProcessRef(pid=7, comm=comm, exe=f"/usr/bin/{comm}"),
                                    "window_id": v.window_id + "/p7"})  # fmt: skip

    out = []
    for i in range(3):
        out += e.observe(proc(i, "ffmpeg"), now=float(T0 + i))  # type: ignore[arg-type]
    assert out == []
    assert e.suppressed == {"enc": 1}
    e2 = _engine(rules)
    out = []
    for i in range(3):
        out += e2.observe(proc(i, "xmrig"), now=float(T0 + i))  # type: ignore[arg-type]
    assert activities(out) == ["Create"]


def test_subject_of_a_verdict() -> None:
    from tests.scorer.test_alerting import verdict

    v = verdict(1, 0.95)
    env = v.envelope.model_copy(update={"container_image": ContainerImage(name="docker.io/library/nginx", tag="1")})
    s = Subject.of_verdict(v.model_copy(update={"envelope": env}))
    assert (s.namespace, s.pod, s.image) == ("shop", "pod-uid-a", "docker.io/library/nginx:1")
    assert Subject.of(PodRef(uid="u", labels={"a": "b"}), None, None).labels == {"a": "b"}


def test_records_of_the_rules_topic() -> None:
    rules = RuleSet()
    r = rule(namespace="shop")
    assert apply(rules, b"r1", r.model_dump_json().encode()) == "put"
    assert apply(rules, b"r2", b"not json") == "ignored"
    assert apply(rules, b"r1", None) == "deleted"
    assert apply(rules, b"r1", b"") == "ignored"
    assert len(rules) == 0


@pytest.mark.kafka
async def test_the_scorer_follows_the_rules_topic() -> None:
    kafka = KafkaSettings(bootstrap=require_kafka(), compression="none")
    topic = f"test.suppressions.{uuid.uuid4().hex[:8]}"
    early = rule("early", namespace="other", expires=timedelta(days=3650))
    late = rule("follow-me", namespace="shop", expires=timedelta(days=3650))
    producer = make_producer(kafka)
    await producer.start()
    await producer.send_and_wait(topic, early.model_dump_json().encode(), key=b"early")
    feed_ = SuppressionFeed(kafka, topic)
    stop = asyncio.Event()
    task = asyncio.create_task(feed_.run(stop))
    try:
        await asyncio.wait_for(feed_.caught_up.wait(), 30)
        assert [r.id for r in feed_.rules.rules] == ["early"]  # what was there at start is in force first
        await producer.send_and_wait(topic, late.model_dump_json().encode(), key=b"follow-me")
        t0 = time.monotonic()
        while feed_.rules.match(SUBJECT) is None:
            assert time.monotonic() - t0 < 30, "the rule never arrived"
            await asyncio.sleep(0.05)
        await producer.send_and_wait(topic, None, key=b"follow-me")
        while feed_.rules.match(SUBJECT) is not None:
            assert time.monotonic() - t0 < 60, "the tombstone never arrived"
            await asyncio.sleep(0.05)
        assert [r.id for r in feed_.rules.rules] == ["early"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await producer.stop()


@pytest.mark.kafka
async def test_no_rules_topic_means_no_rules() -> None:
    feed_ = SuppressionFeed(KafkaSettings(bootstrap=require_kafka()), f"test.none.{uuid.uuid4().hex[:8]}")
    stop = asyncio.Event()
    task = asyncio.create_task(feed_.run(stop))
    try:
        await asyncio.wait_for(feed_.caught_up.wait(), 30)
        assert len(feed_.rules) == 0
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def test_the_service_scores_and_publishes_suppressed_windows_and_counts_them(xgb_set: object, tmp_path: object) -> None:
    from tests.scorer.helpers import trace_windows
    from tests.scorer.test_service import _records, _service

    service = _service(tmp_path)
    service.install(xgb_set)  # type: ignore[arg-type]
    miner = trace_windows("miner-randomx-2t-r1", pod_uid="m1", limit=8)
    ns = miner[0].envelope.pod.namespace if miner[0].envelope.pod else ""
    assert ns, "the sample's windows carry a namespace"
    service.suppressions.rules.put(rule("lab", namespace=ns, expires=timedelta(days=3650)))
    out = service.handle(_records(miner))
    s = service.settings
    assert sum(m.topic == s.verdicts_topic for m in out) == len(miner)  # still scored and published
    assert not [m for m in out if m.topic == s.alerts_topic]
    suppressed = service.metrics.registry.get_sample_value("minerlens_scorer_suppressed_windows_total", {"rule": "lab"})
    assert suppressed is not None
    assert suppressed >= 1
    service.suppressions.rules.remove("lab")
    more = trace_windows("miner-randomx-2t-r1", pod_uid="m1", limit=9)[8:]
    assert [m for m in service.handle(_records(more)) if m.topic == s.alerts_topic]  # alerts again at once
