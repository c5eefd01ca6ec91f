"""Webhook outputs for what platform teams already run: falcosidekick and Prometheus Alertmanager.

**falcosidekick** (``output=falcosidekick``): each finding is POSTed, one per request, as a Falco event
(falcosidekick ``types.FalcoPayload``: ``uuid``, ``output``, ``priority``, ``rule``, ``time``, ``output_fields``,
``source``, ``tags``, ``hostname``) to falcosidekick's ``/`` endpoint, exactly as Falco's ``http_output`` does;
its ~70 outputs, its UI and Falco Talon then work unchanged. ``output_fields`` use Falco's field names
(``k8s.ns.name``, ``k8s.pod.name``, ``container.id``, ``proc.name``, ``proc.pid``, ``proc.exepath``) plus
``minerlens.*`` (score, threshold, alert id, activity, model, reasons, explanation link). Priority from the
OCSF severity (High -> Critical, as Falco's own miner rules); tags include ``T1496`` and ``mitre_impact``.

**Alertmanager** (``output=alertmanager``): the findings of a poll are POSTed as one array to
``/api/v2/alerts``. One Alertmanager alert per minerlens alert: its labels are the alert's identity
(``alertname``, ``alert_id``, ``cluster``, ``namespace``, ``pod``, ``container``, ``node``), stable for the
alert's life so that Create, Update and Close are the same Alertmanager alert; severity, score, process,
reasons and the explanation link are annotations (a label that changed on Update would make a second alert).
Create/Update send no ``endsAt`` (firing); Close sends ``endsAt`` (resolved).

Delivery: connection errors, timeouts, 429 and 5xx are retried with exponential backoff
(``minerlens_core.retrying``, ``webhook_max_retries``); then the alerts are reported *lost* (not committed;
read again later). 401, 403 and 404 (a wrong URL or token) are *lost* at once; any other 4xx *rejects* the
alerts (dead-lettered with the receiver's answer).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from minerlens_core.retrying import Backoff, RetryLater, retry

from minerlens_siem.alert_view import AlertView
from minerlens_siem.decode import Alert
from minerlens_siem.delivery import DeliveryReport

log = logging.getLogger(__name__)

RULE = "Cryptominer suspected in a pod (minerlens)"
ALERTNAME = "MinerlensCryptominerSuspected"
SOURCE = "minerlens"
TAGS = ("minerlens", "cryptomining", "mitre_impact", "T1496", "container", "k8s")
FALCO_PRIORITY = {6: "Emergency", 5: "Alert", 4: "Critical", 3: "Warning", 2: "Notice", 1: "Informational"}
"""OCSF severity_id -> Falco priority (0 Unknown and 99 Other -> Informational)"""
EVENT_NAMESPACE = uuid.UUID("1c4b7e1a-3f0d-5b7e-9a54-6d696e657273")
"""uuid5 namespace of the Falco event uuid (derived from the OCSF event uid: the same event, the same uuid)"""
ALERTMANAGER_PATH = "/api/v2/alerts"
CONFIGURATION_ERRORS = frozenset({401, 403, 404})


def _rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _process(view: AlertView) -> tuple[str, str]:
    """(``comm (pid N, exe)`` for text, ``comm``) of the alert's process; empty when unknown."""
    p = view.process
    if p is None:
        return "", ""
    exe = f", {p.exe}" if p.exe else ""
    return f"{p.comm or '?'} (pid {p.pid}{exe})", p.comm


def falco_payload(view: AlertView) -> dict[str, Any]:
    """The finding as a Falco event (falcosidekick ``FalcoPayload``)."""
    priority = FALCO_PRIORITY.get(view.severity_id, "Informational")
    proc_text, comm = _process(view)
    where = f"{view.namespace or '?'}/{view.pod or '?'}"
    state = {"create": "", "update": " (updated)", "close": " (resolved)"}[view.activity]
    score = "" if view.score is None else f" score={view.score:.3f}"
    text = (
        f"{_rfc3339(view.time_ms)}: {priority} Cryptominer suspected in pod {where}{state}"
        f"{' process=' + proc_text if proc_text else ''}{score}"
        f" container={view.container_id or '?'}{' image=' + view.image.reference if view.image else ''}"
        f" node={view.node or '?'}"
        f"{' reasons=' + view.reasons_summary(3) if view.reasons else ''}"
    )
    fields: dict[str, Any] = {
        "k8s.ns.name": view.namespace,
        "k8s.pod.name": view.pod,
        "k8s.pod.uid": view.pod_uid,
        "container.id": view.container_id,
        "container.image": view.image.reference if view.image else None,
        "container.image.repository": view.image.name if view.image else None,
        "container.image.tag": view.image.tag if view.image else None,
        "container.image.digest": view.image.digest if view.image else None,
        "proc.name": comm or None,
        "proc.pid": view.process.pid if view.process else None,
        "proc.exepath": (view.process.exe or None) if view.process else None,
        "minerlens.alert_id": view.alert_id,
        "minerlens.activity": view.activity,
        "minerlens.score": view.score,
        "minerlens.threshold": view.threshold,
        "minerlens.model": f"{view.model_name} {view.model_version}",
        "minerlens.windows_over": view.windows_over,
        "minerlens.reasons": view.reasons_summary(),
        "minerlens.explain_url": view.explain_url or view.explain_path,
        "minerlens.cluster": view.cluster,
    }
    return {
        "uuid": str(uuid.uuid5(EVENT_NAMESPACE, view.event_uid)),
        "output": text,
        "priority": priority,
        "rule": RULE,
        "time": _rfc3339(view.time_ms),
        "output_fields": {k: v for k, v in fields.items() if v is not None and v != ""},
        "source": SOURCE,
        "tags": [*TAGS, *(["resolved"] if view.activity == "close" else [])],
        "hostname": view.node or "",
    }


def alertmanager_alert(view: AlertView) -> dict[str, Any]:
    """The finding as one Alertmanager alert (API v2 ``postableAlert``)."""
    labels = {
        "alertname": ALERTNAME,
        "alert_id": view.alert_id,
        "cluster": view.cluster,
        "namespace": view.namespace,
        "pod": view.pod,
        "container": view.container_id,
        "node": view.node,
    }
    proc_text, _ = _process(view)
    annotations = {
        "summary": view.title,
        "description": view.message,
        "severity": view.severity.lower(),
        "score": None if view.score is None else f"{view.score:.4f}",
        "threshold": None if view.threshold is None else f"{view.threshold:.4f}",
        "process": proc_text,
        "image": view.image.reference if view.image else None,
        "reasons": view.reasons_summary(),
        "model": f"{view.model_name} {view.model_version}",
        "explain_url": view.explain_url or view.explain_path,
        "mitre": "T1496 Resource Hijacking",
    }
    alert: dict[str, Any] = {
        "labels": {k: v for k, v in labels.items() if v},
        "annotations": {k: v for k, v in annotations.items() if v},
        "startsAt": _rfc3339(view.first_seen_ms or view.created_ms or view.time_ms),
    }
    if view.activity == "close":
        alert["endsAt"] = _rfc3339(view.time_ms)
    if view.explain_url:
        alert["generatorURL"] = view.explain_url
    return alert


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    """falcosidekick: its base URL (events go to ``/``); Alertmanager: its base URL (``/api/v2/alerts`` appended)"""
    token: str = ""
    """sent as ``Authorization: Bearer <token>`` when set"""
    timeout_s: float = 10.0
    max_retries: int = 3
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    verify: bool | str = True


class _Webhook:
    """POSTs JSON bodies with retries; subclasses decide the bodies of a flush."""

    name = "webhook"

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config
        self._client: httpx.AsyncClient | None = None
        self._pending: list[tuple[Any, object]] = []

    async def start(self) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "minerlens-siem"}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        self._client = httpx.AsyncClient(timeout=self.config.timeout_s, verify=self.config.verify, headers=headers)

    def _bodies(self, pending: list[tuple[Any, object]]) -> list[tuple[str, bytes, list[object]]]:
        raise NotImplementedError

    async def _post_once(self, url: str, body: bytes) -> httpx.Response:
        """One request; a connection error, timeout, 429 or 5xx raises ``RetryLater``."""
        assert self._client is not None, "start() first"
        try:
            r = await self._client.post(url, content=body)
        except httpx.HTTPError as exc:
            msg = f"{self.name} {url}: {exc!r}"
            raise RetryLater(msg) from exc
        if r.status_code == 429 or r.status_code >= 500:
            raise RetryLater(self._why(url, r))
        return r

    def _why(self, url: str, r: httpx.Response) -> str:
        return f"{self.name} {url}: HTTP {r.status_code} {r.text[:200]!r}"

    async def _post(self, url: str, body: bytes) -> tuple[str, str]:
        """("delivered" | "rejected" | "lost", why)."""
        cfg = self.config
        try:
            r = await retry(
                lambda: self._post_once(url, body),
                retry_on=(RetryLater,),
                backoff=Backoff(initial_s=cfg.backoff_initial_s, max_s=cfg.backoff_max_s),
                max_retries=cfg.max_retries,
                describe=f"{self.name} POST",
                log=log,
                level=logging.INFO,
            )
        except RetryLater as exc:
            return "lost", str(exc)
        if r.status_code < 300:
            return "delivered", ""
        why = self._why(url, r)
        if r.status_code in CONFIGURATION_ERRORS:
            return "lost", why
        return "rejected", why

    async def flush(self) -> DeliveryReport:
        pending, self._pending = self._pending, []
        report = DeliveryReport()
        for url, body, refs in self._bodies(pending):
            outcome, why = await self._post(url, body)
            if outcome == "delivered":
                report.delivered += len(refs)
            elif outcome == "rejected":
                report.rejected += [(ref, why) for ref in refs]
            else:
                log.warning("%s; %d alerts not delivered", why, len(refs))
                report.lost += [(ref, why) for ref in refs]
        return report

    async def close(self, timeout_s: float) -> DeliveryReport:
        try:
            report = await asyncio.wait_for(self.flush(), timeout_s)
        except TimeoutError:
            report = DeliveryReport(lost=[(ref, "shutdown before delivery") for _, ref in self._pending])
        if self._client is not None:
            await self._client.aclose()
        return report


def _json(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


class FalcosidekickOutput(_Webhook):
    """One Falco event per request, to falcosidekick's ``/`` (as Falco's ``http_output`` posts them)."""

    name = "falcosidekick"

    def submit(self, alert: Alert, ref: object) -> None:
        self._pending.append((_json(falco_payload(alert.view)), ref))

    def _bodies(self, pending: list[tuple[Any, object]]) -> list[tuple[str, bytes, list[object]]]:
        url = self.config.url.rstrip("/") + "/"
        return [(url, body, [ref]) for body, ref in pending]


class AlertmanagerOutput(_Webhook):
    """The alerts of one poll as one array to ``/api/v2/alerts``."""

    name = "alertmanager"

    def submit(self, alert: Alert, ref: object) -> None:
        self._pending.append((alertmanager_alert(alert.view), ref))

    def _bodies(self, pending: list[tuple[Any, object]]) -> list[tuple[str, bytes, list[object]]]:
        if not pending:
            return []
        url = self.config.url.rstrip("/") + ALERTMANAGER_PATH
        return [(url, _json([doc for doc, _ in pending]), [ref for _, ref in pending])]
