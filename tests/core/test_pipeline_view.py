"""The watch view (``minerlens watch``): per-pod rows from verdicts and alerts, and the age filter."""

from __future__ import annotations

from minerlens_core.pipeline_view import PipelineView
from minerlens_core.schemas import Envelope, PodRef
from minerlens_core.schemas.windows import ModelRef, Verdict

from tests.responder.alerts import make_finding

NOW = 1_800_000_000 * 10**9
SEC = 10**9


def verdict(uid: str, end_ns: int, score: float, *, name: str = "web-0") -> Verdict:
    return Verdict(
        envelope=Envelope(node="n1", pod=PodRef(uid=uid, namespace="shop", name=name)),
        window_id=f"{uid}/w/{end_ns}",
        policy="time:2s",
        index=end_ns // (2 * SEC),
        start_ns=end_ns - 2 * SEC,
        end_ns=end_ns,
        count=100,
        decision="miner" if score > 0.5 else "benign",
        score=score,
        threshold=0.5,
        model=ModelRef(name="m", version="1"),
    )


def test_rows_count_windows_scores_and_alerts() -> None:
    view = PipelineView()
    view.add_verdict(verdict("u1", NOW, 0.9, name="miner-0"))
    view.add_verdict(verdict("u1", NOW + 2 * SEC, 0.7, name="miner-0"))
    view.add_verdict(verdict("u2", NOW, 0.1))
    view.add_alert(make_finding(pod_uid="u1", namespace="shop", pod="miner-0"))
    pods = view.summary()["pods"]
    assert pods["shop/miner-0"]["windows"] == 2
    assert pods["shop/miner-0"]["miner_windows"] == 2
    assert pods["shop/miner-0"]["max_score"] == 0.9
    assert pods["shop/miner-0"]["alert"] == "OPEN"
    assert pods["shop/web-0"]["alert"] == "-"
    assert view.alert_report()[0].startswith("ALERT OPEN shop/miner-0")


def test_windows_and_alerts_older_than_the_cutoff_are_counted_not_shown() -> None:
    view = PipelineView(not_before_ns=NOW)
    view.add_verdict(verdict("old", NOW - 3600 * SEC, 0.99, name="ghost"))  # a previous run, flushed late
    view.add_verdict(verdict("new", NOW + SEC, 0.2))
    stale = make_finding(pod_uid="old", pod="ghost")
    stale.finding_info.last_seen_time = (NOW - 3600 * SEC) // 1_000_000
    view.add_alert(stale)
    fresh = make_finding(pod_uid="new", pod="web-0")
    fresh.finding_info.last_seen_time = (NOW + SEC) // 1_000_000
    view.add_alert(fresh)
    summary = view.summary()
    assert set(summary["pods"]) == {"shop/web-0"}
    assert summary["older_not_shown"] == 2
    assert summary["pods"]["shop/web-0"]["alert"] == "OPEN"
