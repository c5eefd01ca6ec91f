"""falcosidekick and Alertmanager outputs against a fake receiver (a real aiohttp server on loopback) that checks
the payloads the way the receivers read them: falcosidekick's ``FalcoPayload`` (types/types.go) and Alertmanager's
API v2 ``postableAlerts``."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web
from minerlens_siem.decode import Alert, decode_alert
from minerlens_siem.delivery import DeliveryReport
from minerlens_siem.metrics import SiemMetrics
from minerlens_siem.outputs import make_output
from minerlens_siem.settings import SiemSettings
from minerlens_siem.webhooks import FALCO_PRIORITY, AlertmanagerOutput, FalcosidekickOutput, WebhookConfig
from pydantic import ValidationError

from tests.siem.findings import ALERT_ID, CONTAINER_ID, POD_UID, make_finding
from tests.siem.loopback import serve_loopback

FALCO_KEYS = {"uuid", "output", "priority", "rule", "time", "output_fields", "source", "tags", "hostname"}
PROCESS = {"pid": 4242, "comm": "kworker-x", "exe": "/tmp/.x/kworker-x", "cpu_cores": 1.9}


@dataclass
class Receiver:
    """Records every request; answers ``statuses`` in turn (then 200)."""

    statuses: list[int] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append((request.path, dict(request.headers), body))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"status": status}, status=status)


@asynccontextmanager
async def receiver(statuses: list[int] | None = None) -> AsyncIterator[Receiver]:
    r = Receiver(list(statuses or []))
    async with serve_loopback("/{tail:.*}", r.handle) as url:
        r.url = url
        yield r


def _alert(activity_id: int = 1, severity_id: int = 4, process: dict[str, Any] | None = PROCESS) -> Alert:
    finding = make_finding(activity_id=activity_id, severity_id=severity_id)
    doc = finding.model_dump(mode="json", exclude_none=True)
    if process is not None:
        doc["unmapped"]["minerlens"]["process"] = process
    decoded = decode_alert(json.dumps(doc).encode())
    assert isinstance(decoded, Alert), decoded
    return decoded


def _check_falco_payload(p: dict[str, Any]) -> None:
    """What falcosidekick needs to accept and route an event."""
    assert set(p) == FALCO_KEYS
    uuid.UUID(p["uuid"])
    assert p["priority"] in FALCO_PRIORITY.values()
    datetime.fromisoformat(p["time"].replace("Z", "+00:00"))
    assert isinstance(p["output_fields"], dict)
    assert all(isinstance(v, str | int | float | bool) for v in p["output_fields"].values())
    assert isinstance(p["tags"], list)
    assert all(isinstance(t, str) for t in p["tags"])


async def test_falcosidekick_gets_one_falco_event_per_finding() -> None:
    async with receiver() as r:
        out = FalcosidekickOutput(WebhookConfig(url=r.url, token="s3cret"))
        await out.start()
        for activity in (1, 2, 3):
            out.submit(_alert(activity), ref=activity)
        report = await out.flush()
        await out.close(1.0)
    assert report.delivered == 3
    assert report.ok
    assert [path for path, _, _ in r.requests] == ["/"] * 3
    assert all(h["Authorization"] == "Bearer s3cret" for _, h, _ in r.requests)
    create, update, close = (body for _, _, body in r.requests)
    for p in (create, update, close):
        _check_falco_payload(p)
    f = create["output_fields"]
    assert f["k8s.ns.name"] == "shop"
    assert f["k8s.pod.name"] == "checkout-7d9f8b6c5-x2k4q"
    assert f["k8s.pod.uid"] == POD_UID
    assert f["container.id"] == CONTAINER_ID
    assert (f["proc.name"], f["proc.pid"], f["proc.exepath"]) == ("kworker-x", 4242, "/tmp/.x/kworker-x")
    assert f["minerlens.alert_id"] == ALERT_ID
    assert f["minerlens.score"] == pytest.approx(0.973)
    assert "sched_yield" in f["minerlens.reasons"]
    assert create["priority"] == "Critical"  # OCSF High, as Falco's own miner rules
    assert "T1496" in create["tags"]
    assert "mitre_impact" in create["tags"]
    assert create["hostname"] == "node-a"
    assert "Cryptominer suspected in pod shop/checkout-7d9f8b6c5-x2k4q" in create["output"]
    assert "kworker-x (pid 4242, /tmp/.x/kworker-x)" in create["output"]
    assert "resolved" in close["tags"]
    assert "(resolved)" in close["output"]
    assert len({p["uuid"] for p in (create, update, close)}) == 3
    again = FalcosidekickOutput(WebhookConfig(url="http://127.0.0.1:9"))
    again.submit(_alert(1), ref=0)
    assert json.loads(again._pending[0][0])["uuid"] == create["uuid"], "the same event has the same uuid"


async def test_falco_priority_follows_severity_and_missing_process_is_left_out() -> None:
    async with receiver() as r:
        out = FalcosidekickOutput(WebhookConfig(url=r.url))
        await out.start()
        out.submit(_alert(severity_id=3, process=None), ref=1)
        out.submit(_alert(severity_id=2, process=None), ref=2)
        await out.flush()
        await out.close(1.0)
    medium, low = (body for _, _, body in r.requests)
    assert (medium["priority"], low["priority"]) == ("Warning", "Notice")
    assert not any(k.startswith("proc.") for k in medium["output_fields"])
    assert "Authorization" not in r.requests[0][1]


async def test_alertmanager_gets_one_stable_alert_that_resolves() -> None:
    async with receiver() as r:
        out = AlertmanagerOutput(WebhookConfig(url=r.url + "/"))
        await out.start()
        out.submit(_alert(1), ref=1)
        out.submit(_alert(2, severity_id=3), ref=2)
        assert (await out.flush()).delivered == 2
        out.submit(_alert(3), ref=3)
        assert (await out.flush()).delivered == 1
        await out.close(1.0)
    assert [path for path, _, _ in r.requests] == ["/api/v2/alerts"] * 2
    (create, update), (close,) = (body for _, _, body in r.requests)
    for a in (create, update, close):
        assert set(a) <= {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
        assert all(isinstance(v, str) and v for v in a["labels"].values())
        assert all(isinstance(v, str) and v for v in a["annotations"].values())
        datetime.fromisoformat(a["startsAt"].replace("Z", "+00:00"))
    assert create["labels"] == update["labels"] == close["labels"], "one Alertmanager alert for the whole life"
    assert create["labels"]["alertname"] == "MinerlensCryptominerSuspected"
    assert create["labels"]["namespace"] == "shop"
    assert create["labels"]["alert_id"] == ALERT_ID
    assert (create["annotations"]["severity"], update["annotations"]["severity"]) == ("high", "medium")
    assert create["annotations"]["process"] == "kworker-x (pid 4242, /tmp/.x/kworker-x)"
    assert "T1496" in create["annotations"]["mitre"]
    assert "endsAt" not in create
    assert "endsAt" not in update
    ends = datetime.fromisoformat(close["endsAt"].replace("Z", "+00:00"))
    assert ends > datetime.fromisoformat(close["startsAt"].replace("Z", "+00:00"))


async def _deliver_one(
    cls: type[FalcosidekickOutput | AlertmanagerOutput], statuses: list[int], ref: str, url: str | None = None
) -> tuple[DeliveryReport, int]:
    """One alert through an output against a receiver answering ``statuses``: (report, requests received)."""
    fast = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02, "max_retries": 2}
    async with receiver(statuses) as r:
        out = cls(WebhookConfig(url=url or r.url, **fast))  # type: ignore[arg-type]
        await out.start()
        out.submit(_alert(), ref=ref)
        report = await out.flush()
        await out.close(1.0)
    return report, len(r.requests)


async def test_retries_then_lost_rejected_and_configuration_errors() -> None:
    report, sent = await _deliver_one(FalcosidekickOutput, [503, 500], "a")  # two failures, then accepted
    assert (report.delivered, sent) == (1, 3)
    report, sent = await _deliver_one(FalcosidekickOutput, [503, 503, 503], "b")
    assert report.delivered == 0
    assert [ref for ref, _ in report.lost] == ["b"]
    assert "HTTP 503" in report.lost[0][1]
    report, sent = await _deliver_one(AlertmanagerOutput, [400], "c")
    assert [ref for ref, _ in report.rejected] == ["c"]
    assert sent == 1, "a 400 is final"
    report, _ = await _deliver_one(AlertmanagerOutput, [404], "d")
    assert [ref for ref, _ in report.lost] == ["d"], "a wrong URL keeps the alert (not dead-lettered)"
    report, sent = await _deliver_one(FalcosidekickOutput, [], "e", url="http://127.0.0.1:9")
    assert [ref for ref, _ in report.lost] == ["e"]
    assert sent == 0


def test_settings_build_the_webhook_outputs() -> None:
    metrics = SiemMetrics()
    out = make_output(SiemSettings(output="falcosidekick", webhook_url="http://falcosidekick:2801"), metrics)
    assert isinstance(out, FalcosidekickOutput)
    out = make_output(SiemSettings(output="alertmanager", webhook_url="https://am:9093"), metrics)
    assert isinstance(out, AlertmanagerOutput)
    for bad in ("", "falcosidekick:2801", "ftp://x"):
        with pytest.raises(ValidationError, match="WEBHOOK_URL"):
            SiemSettings(output="falcosidekick", webhook_url=bad)
