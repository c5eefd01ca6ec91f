"""Splunk HEC sender against a real local HTTP server (aiohttp) that records requests and fails on demand."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from typing import Any

import pytest
from minerlens_siem.decode import Alert, decode_alert
from minerlens_siem.hec import HecConfig, HecSender, hec_event
from minerlens_siem.metrics import SiemMetrics
from minerlens_siem.outputs import SplunkHecOutput

from tests.siem.fake_hec import TOKEN, FakeHec, serve_fake_hec
from tests.siem.findings import finding_json, make_finding


def config(url: str, **overrides: Any) -> HecConfig:
    base: dict[str, Any] = {
        "url": url,
        "token": TOKEN,
        "flush_interval_s": 0.05,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.4,
        "timeout_s": 2.0,
    }
    base.update(overrides)
    return HecConfig(**base)


def payload(i: int) -> bytes:
    return json.dumps({"time": 1.0, "sourcetype": "ocsf:detection_finding", "event": {"n": i}}).encode()


def alert(**kwargs: Any) -> Alert:
    decoded = decode_alert(finding_json(make_finding(**kwargs)))
    assert isinstance(decoded, Alert)
    return decoded


async def test_headers_and_body_format(hec: FakeHec) -> None:
    metrics = SiemMetrics()
    output = SplunkHecOutput(HecSender(config(hec.url), metrics), index="security")
    await output.start()
    a1, a2 = alert(activity_id=1), alert(activity_id=3)
    output.submit(a1, ref=1)
    output.submit(a2, ref=2)
    report = await output.flush()
    assert report.delivered == 2
    assert report.ok
    assert len(hec.requests) == 1
    req = hec.requests[0]
    assert req.method == "POST"
    assert req.path == "/services/collector/event"
    assert req.headers["Authorization"] == f"Splunk {TOKEN}"
    assert req.headers["Content-Type"] == "application/json"
    assert "Content-Encoding" not in req.headers
    assert not req.body.startswith(b"[")  # concatenated objects, not an array
    events = req.events()
    assert [set(e) for e in events] == [{"time", "host", "source", "sourcetype", "index", "event"}] * 2
    first = events[0]
    assert first["time"] == pytest.approx(1_767_225_600.123)
    assert first["host"] == "node-a"
    assert first["source"] == "minerlens"
    assert first["sourcetype"] == "ocsf:detection_finding"
    assert first["index"] == "security"
    assert first["event"] == a1.document  # the OCSF JSON, unchanged
    assert events[1]["event"]["activity_id"] == 3
    await output.close(1)


async def test_envelope_without_index_or_host() -> None:
    a = alert()
    envelope = json.loads(hec_event(a.view, a.document))
    assert "index" not in envelope
    assert envelope["host"] == "node-a"
    assert json.loads(hec_event(a.view, a.document, host="h2", index="i"))["host"] == "h2"


async def test_retries_5xx_with_exponential_backoff(hec: FakeHec) -> None:
    hec.fail_first = 3
    metrics = SiemMetrics()
    sender = HecSender(config(hec.url, backoff_initial_s=0.05, max_retries=5), metrics)
    await sender.start()
    sender.submit(payload(1), ref="a")
    report = await sender.flush()
    assert report.delivered == 1
    assert report.ok
    assert len(hec.requests) == 4  # 3 failures + 1 success
    assert all(r.body == hec.requests[0].body for r in hec.requests)  # same batch resent
    gaps = [b.at - a.at for a, b in zip(hec.requests, hec.requests[1:], strict=False)]
    # backoff doubles (0.05, 0.1, 0.2), plus a jitter of up to half the first delay
    assert gaps[0] >= 0.025
    assert gaps[1] >= 0.05
    assert gaps[2] >= 0.1
    assert gaps[2] > gaps[0]
    assert metrics.hec_retries._value.get() == 3
    assert metrics.hec_requests.labels(status="503")._value.get() == 3
    await sender.close(1)


async def test_429_is_retried_and_retry_after_honoured(hec: FakeHec) -> None:
    hec.fail_first, hec.fail_status, hec.retry_after = 1, 429, "0.3"
    sender = HecSender(config(hec.url, backoff_initial_s=0.01))
    await sender.start()
    sender.submit(payload(1))
    report = await sender.flush()
    assert report.ok
    assert len(hec.requests) == 2
    assert hec.requests[1].at - hec.requests[0].at >= 0.29
    await sender.close(1)


async def test_gives_up_after_max_retries_and_reports_lost(hec: FakeHec) -> None:
    hec.fail_first = 100
    metrics = SiemMetrics()
    sender = HecSender(config(hec.url, max_retries=2), metrics)
    await sender.start()
    sender.submit(payload(1), ref="a")
    sender.submit(payload(2), ref="b")
    report = await sender.flush()
    assert len(hec.requests) == 3  # 1 + 2 retries
    assert [ref for ref, _ in report.lost] == ["a", "b"]
    assert "HTTP 503" in report.lost[0][1]
    assert "gave up after 2 retries" in report.lost[0][1]
    assert metrics.hec_given_up._value.get() == 2
    await sender.close(1)


@pytest.mark.parametrize("status", [400, 413])
async def test_other_4xx_are_not_retried_and_reported_rejected(hec: FakeHec, status: int) -> None:
    hec.fail_first, hec.fail_status = 1, status
    metrics = SiemMetrics()
    sender = HecSender(config(hec.url), metrics)
    await sender.start()
    sender.submit(payload(1), ref="a")
    report = await sender.flush()
    assert len(hec.requests) == 1
    assert [ref for ref, _ in report.rejected] == ["a"]
    assert f"HTTP {status}" in report.rejected[0][1]
    assert report.ok  # rejected is final, not a transient loss
    assert metrics.hec_rejected._value.get() == 1
    await sender.close(1)


async def test_bad_token_is_not_retried_and_kept_for_later(hec: FakeHec) -> None:
    sender = HecSender(config(hec.url, token="wrong-token-0123456789"))
    await sender.start()
    sender.submit(payload(1), ref="a")
    report = await sender.flush()
    assert len(hec.requests) == 1
    assert [ref for ref, _ in report.lost] == ["a"]  # lost (kept in Kafka), not rejected (dead-lettered)
    assert "HTTP 403" in report.lost[0][1]
    await sender.close(1)


async def test_invalid_event_number_splits_the_batch(hec: FakeHec) -> None:
    hec.reject_marker = '"n": 2'
    sender = HecSender(config(hec.url))
    await sender.start()
    for i in range(5):
        sender.submit(payload(i), ref=i)
    report = await sender.flush()
    assert [ref for ref, _ in report.rejected] == [2]
    assert report.delivered == 4  # 0, 1 accepted with the first request; 3, 4 resent
    assert [[e["event"]["n"] for e in r.events()] for r in hec.requests] == [[0, 1, 2, 3, 4], [3, 4]]
    await sender.close(1)


async def test_connection_errors_are_retried_until_the_server_appears() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics = SiemMetrics()
    cfg = config(f"http://127.0.0.1:{port}", backoff_initial_s=0.1, backoff_max_s=0.2, max_retries=20)
    sender = HecSender(cfg, metrics)
    await sender.start()
    sender.submit(payload(1), ref="a")
    flushing = asyncio.create_task(sender.flush())
    await asyncio.sleep(0.4)  # a few refused connections
    assert not flushing.done()
    try:
        async with serve_fake_hec(port=port) as fake:
            report = await asyncio.wait_for(flushing, 10)
            assert report.ok
            assert report.delivered == 1
            assert metrics.hec_requests.labels(status="error")._value.get() >= 2
            assert len(fake.requests) == 1
    finally:
        await sender.close(1)


async def test_batches_respect_max_events_and_bytes(hec: FakeHec) -> None:
    sender = HecSender(config(hec.url, batch_max_events=4, flush_interval_s=5))
    await sender.start()
    for i in range(10):
        sender.submit(payload(i))
    report = await sender.flush()
    assert report.delivered == 10
    assert [len(r.events()) for r in hec.requests] == [4, 4, 2]
    assert [e["event"]["n"] for r in hec.requests for e in r.events()] == list(range(10))  # in order
    hec.requests.clear()
    size = len(payload(0))
    sender2 = HecSender(config(hec.url, batch_max_bytes=size * 3 + 1))
    await sender2.start()
    for i in range(7):
        sender2.submit(payload(i))
    await sender2.flush()
    assert [len(r.events()) for r in hec.requests] == [3, 3, 1]
    await sender.close(1)
    await sender2.close(1)


async def test_full_batch_is_sent_without_waiting_for_the_interval(hec: FakeHec) -> None:
    sender = HecSender(config(hec.url, batch_max_events=3, flush_interval_s=30))
    await sender.start()
    for i in range(3):
        sender.submit(payload(i))
    for _ in range(100):
        if hec.requests:
            break
        await asyncio.sleep(0.02)
    assert len(hec.requests) == 1
    assert len(hec.requests[0].events()) == 3
    await sender.close(1)


async def test_queue_is_bounded_and_drops_the_oldest(hec: FakeHec) -> None:
    metrics = SiemMetrics()
    sender = HecSender(config(hec.url, queue_max_events=3, batch_max_events=100), metrics)
    for i in range(5):  # not started yet: everything waits in the queue
        sender.submit(payload(i), ref=i)
    assert sender.queued == 3
    assert metrics.hec_dropped._value.get() == 2
    assert metrics.hec_queue._value.get() == 3
    await sender.start()
    report = await sender.flush()
    assert [ref for ref, _ in report.lost] == [0, 1]
    assert "queue full" in report.lost[0][1]
    assert report.delivered == 3
    assert [e["event"]["n"] for e in hec.requests[0].events()] == [2, 3, 4]
    await sender.close(1)


async def test_close_flushes_what_is_queued(hec: FakeHec) -> None:
    sender = HecSender(config(hec.url, flush_interval_s=60, batch_max_events=1000))
    await sender.start()
    for i in range(7):
        sender.submit(payload(i), ref=i)
    report = await sender.close(5)
    assert report.delivered == 7
    assert report.ok
    assert [e["event"]["n"] for r in hec.requests for e in r.events()] == list(range(7))


async def test_close_with_a_stuck_server_reports_undelivered_as_lost(hec: FakeHec) -> None:
    hec.delay_s = 5
    sender = HecSender(config(hec.url, timeout_s=10))
    await sender.start()
    sender.submit(payload(1), ref="in-flight")
    await asyncio.sleep(0.2)
    sender.submit(payload(2), ref="queued")
    report = await sender.close(0.3)
    assert sorted(str(ref) for ref, _ in report.lost) == ["in-flight", "queued"]


async def test_gzip_bodies(hec: FakeHec) -> None:
    sender = HecSender(config(hec.url, gzip=True))
    await sender.start()
    for i in range(50):
        sender.submit(payload(i))
    report = await sender.flush()
    assert report.ok
    assert report.delivered == 50
    req = hec.requests[0]
    assert req.headers["Content-Encoding"] == "gzip"
    assert [e["event"]["n"] for e in req.events()] == list(range(50))
    raw = b"".join(payload(i) for i in range(50))
    assert req.body == raw
    assert int(req.headers["Content-Length"]) == len(gzip.compress(raw)) < len(raw) / 4  # sent compressed
    await sender.close(1)
