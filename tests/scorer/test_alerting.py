"""The per-pod alert state machine: k of n opens, updates, hysteresis resolves, replays and restarts
never duplicate an alert."""

from __future__ import annotations

from minerlens_core.schemas.envelope import Envelope, PodRef
from minerlens_core.schemas.ocsf import DetectionFinding, decode_finding
from minerlens_core.schemas.windows import ModelRef, Reason, Verdict, window_id
from minerlens_scorer.alerting import AlertEngine, AlertPolicy, alert_id
from minerlens_scorer.findings import FindingFactory

MODEL = ModelRef(name="minerlens-xgboost", version="0.1.0", manifest_sha256="a" * 64)
THRESHOLD = 0.9
T0 = 1_795_000_000  # seconds since the epoch (2026-11-18)
POLICY = AlertPolicy(k=3, n=5, resolve_m=3, resolve_factor=0.5, quiet_timeout_s=60, update_score_delta=0.05)


def engine(policy: AlertPolicy = POLICY) -> AlertEngine:
    return AlertEngine(policy, FindingFactory(policy, "0.1.0"), clock=lambda: float(T0))


def verdict(
    index: int, score: float | None, *, pod: str = "uid-a", container: str = "c0", count: int = 20
) -> Verdict:  # fmt: skip
    wid = window_id(pod, container, "time:1s", index)
    decision = "insufficient_data" if score is None else "miner" if score > THRESHOLD else "benign"
    reasons = [Reason(feature="freq.sched_yield", value=0.4, baseline=0.0, contribution=1.0, text="sched_yield 40%")]
    return Verdict(
        envelope=Envelope(
            cluster="c", node="node-1", pod=PodRef(uid=pod, namespace="shop", name=f"pod-{pod}"), container_id=container
        ),
        window_id=wid,
        policy="time:1s",
        index=index,
        start_ns=(T0 + index) * 1_000_000_000,
        end_ns=(T0 + index + 1) * 1_000_000_000,
        count=count,
        decision=decision,  # type: ignore[arg-type]
        score=score,
        threshold=THRESHOLD,
        model=MODEL,
        scores=[],
        reasons=reasons if decision == "miner" else [],
    )


def feed(e: AlertEngine, scores: list[float | None], start: int = 0, **kw: object) -> list[DetectionFinding]:
    out: list[DetectionFinding] = []
    for i, s in enumerate(scores):
        out += e.observe(verdict(start + i, s, **kw), now=float(T0 + start + i))  # type: ignore[arg-type]
    return out


def activities(findings: list[DetectionFinding]) -> list[str]:
    return [f.activity_name for f in findings]


def test_opens_after_k_of_the_last_n() -> None:
    e = engine()
    assert feed(e, [0.95, 0.1, 0.95, 0.1, 0.1, 0.1, 0.95]) == []  # never 3 over within 5
    out = feed(e, [0.95, 0.97], start=7)  # windows 6, 7, 8 are over: 3 of the last 5
    assert activities(out) == ["Create"]
    f = out[0]
    m = f.unmapped["minerlens"]
    assert f.finding_info.uid == alert_id("uid-a", window_id("uid-a", "c0", "time:1s", 8))
    assert m["opened_by"] == window_id("uid-a", "c0", "time:1s", 8)
    assert m["windows_over"] == 3
    assert m["windows_seen"] == 5
    assert m["window_ids"] == [window_id("uid-a", "c0", "time:1s", i) for i in (6, 7, 8)]
    assert m["score"] == 0.97
    assert m["explain_window"] == window_id("uid-a", "c0", "time:1s", 8)
    assert f.status == "New"
    assert f.is_alert
    assert list(e.open_alerts) == ["uid-a"]


def test_alert_ids_are_deterministic() -> None:
    a = feed(engine(), [0.95, 0.95, 0.95])
    b = feed(engine(), [0.95, 0.95, 0.95])
    assert a[0].finding_info.uid == b[0].finding_info.uid
    assert a[0].finding_info.uid != feed(engine(), [0.95, 0.95, 0.95], pod="uid-b")[0].finding_info.uid


def test_one_open_alert_per_pod_updated_only_on_material_change() -> None:
    e = engine()
    out = feed(e, [0.91, 0.91, 0.91])
    assert activities(out) == ["Create"]
    out = feed(e, [0.92, 0.91], start=3)  # nothing material: peak +0.01, 5 over < 2 x 3
    assert out == []
    out = feed(e, [0.91], start=5)  # 6 over = 2 x 3: Update
    assert activities(out) == ["Update"]
    assert out[0].unmapped["minerlens"]["windows_over"] == 6
    out = feed(e, [0.99], start=6)  # peak rose by >= 0.05 (and severity Medium -> High): Update
    assert activities(out) == ["Update"]
    f = out[0]
    assert f.status == "In Progress"
    assert f.severity == "High"
    assert f.finding_info.uid == alert_id("uid-a", window_id("uid-a", "c0", "time:1s", 2))
    assert f.unmapped["minerlens"]["explain_window"] == window_id("uid-a", "c0", "time:1s", 6)
    assert [x.metadata.uid for x in [f]] == [f"{f.finding_info.uid}:3"]
    assert len(e.open_alerts) == 1


def test_resolves_with_hysteresis() -> None:
    e = engine()
    feed(e, [0.95, 0.95, 0.95])
    # below the threshold but above the lower threshold (0.45): still open
    assert feed(e, [0.6, 0.5, 0.6, 0.5, 0.6, 0.5], start=3) == []
    # two below, one in the band: the run restarts
    assert feed(e, [0.1, 0.1, 0.6, 0.1, 0.1], start=9) == []
    out = feed(e, [0.1], start=14)  # third consecutive window below 0.45
    assert activities(out) == ["Close"]
    f = out[0]
    assert f.status == "Resolved"
    assert f.is_alert is False
    assert "3 consecutive windows scored below 0.450" in f.unmapped["minerlens"]["resolution"]
    assert e.open_alerts == {}
    # a new episode is a new alert
    out = feed(e, [0.95, 0.95, 0.95], start=15)
    assert activities(out) == ["Create"]
    assert out[0].finding_info.uid != f.finding_info.uid


def test_quiet_pod_resolves_after_timeout() -> None:
    e = engine()
    feed(e, [0.95, 0.95, 0.95])
    assert e.expire(now=T0 + 2.0 + 59) == []
    out = e.expire(now=T0 + 2.0 + 61)
    assert activities(out) == ["Close"]
    assert "quiet timeout" in out[0].unmapped["minerlens"]["resolution"]


def test_insufficient_data_neither_counts_nor_resolves() -> None:
    e = engine()
    assert feed(e, [0.95, None, None, 0.95, None, None, None]) == []  # only 2 scored windows over
    out = feed(e, [0.95], start=7)
    assert activities(out) == ["Create"]
    assert out[0].unmapped["minerlens"]["windows_seen"] == 3
    assert feed(e, [None] * 10, start=8) == []
    assert "uid-a" in e.open_alerts
    # a pod that only sends windows too small to score is judged quiet: the alert resolves on the timeout
    assert activities(e.expire(now=T0 + 7 + 61)) == ["Close"]


def test_replayed_windows_change_nothing() -> None:
    e = engine()
    first = feed(e, [0.95, 0.95, 0.95, 0.95])
    assert activities(first) == ["Create"]
    before = e.open_alerts["uid-a"].windows_over
    assert feed(e, [0.95, 0.95, 0.95, 0.95]) == []  # the same windows again (e.g. featurizer restart)
    assert e.open_alerts["uid-a"].windows_over == before
    assert e.replays == 4
    # replaying after the alert closed does not open it again
    feed(e, [0.1, 0.1, 0.1], start=4)
    assert e.open_alerts == {}
    assert feed(e, [0.95, 0.95, 0.95, 0.95, 0.1, 0.1, 0.1]) == []


def test_streams_of_one_pod_are_tracked_separately() -> None:
    e = engine()
    out = feed(e, [0.95, 0.95], container="c1") + feed(e, [0.95], container="c2")
    assert activities(out) == ["Create"], "windows of both containers count for the pod"
    assert feed(e, [0.95], container="c2") == [], "index 0 of c2 was seen: a replay"


def test_pods_are_independent() -> None:
    e = engine()
    out = feed(e, [0.95, 0.95, 0.95], pod="p1") + feed(e, [0.95, 0.95, 0.1], pod="p2")
    assert [f.unmapped["minerlens"]["pod_uid"] for f in out] == ["p1"]


def _roundtrip(findings: list[DetectionFinding]) -> list[DetectionFinding]:
    """What the alerts topic returns: the JSON the scorer produced, decoded."""
    return [decode_finding(f.model_dump_json(exclude_none=True)) for f in findings]


def test_restart_rebuilds_the_open_alert() -> None:
    e = engine()
    created = feed(e, [0.1, 0.95, 0.95, 0.95])
    assert activities(created) == ["Create"]
    # restart: a fresh engine rebuilt from the latest finding per pod
    e2 = engine()
    assert e2.restore(_roundtrip(created)) == 1
    restored = e2.open_alerts["uid-a"]
    assert restored.alert_id == created[0].finding_info.uid
    assert restored.windows_over == 3
    assert restored.windows_seen == 4
    # the uncommitted batch is consumed again: no second Create, nothing counted twice
    assert feed(e2, [0.1, 0.95, 0.95, 0.95]) == []
    assert e2.open_alerts["uid-a"].windows_over == 3
    # new windows continue the same alert
    out = feed(e2, [0.95, 0.95, 0.95], start=4)
    assert activities(out) == ["Update"]
    assert out[0].finding_info.uid == created[0].finding_info.uid
    assert out[0].metadata.uid == f"{created[0].finding_info.uid}:2"
    # and it resolves like the original would have
    closed = feed(e2, [0.1, 0.1, 0.1], start=7)
    assert activities(closed) == ["Close"]


def test_restart_after_close_ignores_replays() -> None:
    e = engine()
    events = feed(e, [0.95, 0.95, 0.95, 0.1, 0.1, 0.1])
    assert activities(events) == ["Create", "Close"]
    e2 = engine()
    assert e2.restore(_roundtrip(events[-1:])) == 0
    assert feed(e2, [0.95, 0.95, 0.95, 0.1, 0.1, 0.1]) == []
    assert activities(feed(e2, [0.95, 0.95, 0.95], start=6)) == ["Create"]


def test_restore_skips_foreign_findings() -> None:
    e = engine()
    created = feed(e, [0.95, 0.95, 0.95])
    broken = created[0].model_copy(update={"unmapped": {"minerlens": {"pod_uid": "x"}}})
    other = created[0].model_copy(update={"unmapped": {}})
    assert engine().restore([broken, other]) == 0


def test_k_must_not_exceed_n() -> None:
    import pytest

    with pytest.raises(ValueError, match="k <= n"):
        AlertPolicy(k=6, n=5)


def process_verdict(index: int, score: float, pid: int, comm: str) -> Verdict:
    from minerlens_core.schemas.windows import ProcessRef

    v = verdict(index, score)
    return v.model_copy(
        update={
            "window_id": window_id("uid-a", "c0", "time:1s", index, pid),
            "scope": "process",
            "process": ProcessRef(pid=pid, comm=comm, exe=f"/usr/sbin/{comm}", cpu_cores=2.0),
        }
    )


def test_a_hidden_miners_process_windows_open_the_alert_and_name_it() -> None:
    """The busy web pod scores benign as a whole; the miner's own process window is over: one slot counts once."""
    e = engine()
    out: list[DetectionFinding] = []
    for i in range(3):
        t = float(T0 + i)
        out += e.observe(verdict(i, 0.05), now=t)  # the pod window: nginx dominates it
        out += e.observe(process_verdict(i, 0.1, 20, "nginx"), now=t)
        out += e.observe(process_verdict(i, 0.99, 42, "php-fpm"), now=t)
    assert activities(out) == ["Create"]
    m = out[0].unmapped["minerlens"]
    assert m["windows_over"] == 3  # three slots, not nine windows
    assert m["windows_seen"] == 3
    assert m["process"]["comm"] == "php-fpm"
    assert m["process"]["pid"] == 42
    assert "php-fpm (pid 42, /usr/sbin/php-fpm)" in out[0].finding_info.title
    assert m["evidence"]["scope"] == "process"
    # replays of process windows are recognised like any other window
    assert e.observe(process_verdict(2, 0.99, 42, "php-fpm"), now=float(T0 + 9)) == []
    assert e.replays == 1
    # the alert survives a restart with its named process
    e2 = engine()
    e2.restore([out[0]])
    assert e2.open_alerts["uid-a"].evidence.process is not None
    assert e2.open_alerts["uid-a"].evidence.process.comm == "php-fpm"
    assert e2.observe(process_verdict(2, 0.99, 42, "php-fpm"), now=float(T0 + 9)) == []
