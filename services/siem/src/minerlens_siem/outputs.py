"""The outputs of ``minerlens siem run``: stdout (OCSF), ecs (NDJSON), cef-syslog, splunk-hec, and the webhooks
falcosidekick and alertmanager (``webhooks``).

Every output has the same life cycle: ``start()``, ``submit(alert, ref)`` for each alert of a poll
(mapping errors raise ``ValueError`` at once), ``flush()`` -> :class:`DeliveryReport`, ``close()``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from minerlens_siem.cef import view_to_cef
from minerlens_siem.decode import Alert
from minerlens_siem.delivery import DeliveryReport
from minerlens_siem.ecs import view_to_ecs
from minerlens_siem.hec import HecConfig, HecSender, hec_event
from minerlens_siem.metrics import SiemMetrics
from minerlens_siem.settings import SiemSettings
from minerlens_siem.syslog import OCSF_TO_SYSLOG_SEVERITY, SyslogSender, rfc5424
from minerlens_siem.webhooks import AlertmanagerOutput, FalcosidekickOutput, WebhookConfig

log = logging.getLogger(__name__)


class Output(Protocol):
    name: str

    async def start(self) -> None: ...

    def submit(self, alert: Alert, ref: object) -> None: ...

    async def flush(self) -> DeliveryReport: ...

    async def close(self, timeout_s: float) -> DeliveryReport: ...


def _compact(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


class JsonLinesOutput:
    """One JSON document per line to a text stream (stdout, or a file Filebeat/Elastic Agent tails)."""

    def __init__(
        self, name: str, stream: TextIO, render: Callable[[Alert], dict[str, Any]], *, owns_stream: bool = False
    ) -> None:
        self.name = name
        self._stream = stream
        self._owns_stream = owns_stream
        self._render = render
        self._pending: list[tuple[str, object]] = []

    async def start(self) -> None:
        return None

    def submit(self, alert: Alert, ref: object) -> None:
        line = _compact(self._render(alert))
        line.encode("utf-8")  # a lone surrogate raises here (dead-lettered), not in flush for the whole poll
        self._pending.append((line, ref))

    async def flush(self) -> DeliveryReport:
        pending, self._pending = self._pending, []
        report = DeliveryReport()
        try:
            for line, _ in pending:
                self._stream.write(line + "\n")
            self._stream.flush()
        except OSError as exc:
            report.lost = [(ref, f"write failed: {exc}") for _, ref in pending]
            return report
        report.delivered = len(pending)
        return report

    async def close(self, timeout_s: float) -> DeliveryReport:
        report = await self.flush()
        if self._owns_stream:
            self._stream.close()
        return report


class CefSyslogOutput:
    """CEF lines in RFC 5424 syslog messages, over UDP or TCP."""

    name = "cef-syslog"

    def __init__(
        self,
        sender: SyslogSender,
        *,
        facility: int = 4,
        app_name: str = "minerlens",
        hostname: str = "",
        metrics: SiemMetrics | None = None,
    ) -> None:
        self._sender = sender
        self._facility = facility
        self._app = app_name
        self._hostname = hostname or socket.gethostname()
        self._procid = str(os.getpid())
        self._metrics = metrics or SiemMetrics()
        self._pending: list[tuple[bytes, object]] = []

    async def start(self) -> None:
        return None

    def submit(self, alert: Alert, ref: object) -> None:
        line = view_to_cef(alert.view)
        message = rfc5424(
            line,
            facility=self._facility,
            severity=OCSF_TO_SYSLOG_SEVERITY.get(alert.view.severity_id, 6),
            hostname=self._hostname,
            app_name=self._app,
            procid=self._procid,
            msgid="CEF",
        )
        self._pending.append((message, ref))

    async def flush(self) -> DeliveryReport:
        pending, self._pending = self._pending, []
        report = DeliveryReport()
        for i, (message, _) in enumerate(pending):
            truncated = self._sender.truncated
            try:
                await self._sender.send(message)
            except (OSError, TimeoutError) as exc:
                reason = f"syslog {self._sender.transport} {self._sender.host}:{self._sender.port}: {exc!r}"
                log.warning("%s; %d messages not sent", reason, len(pending) - i)
                report.lost = [(ref, reason) for _, ref in pending[i:]]
                return report
            if self._sender.truncated > truncated:
                self._metrics.syslog_truncated.inc()
            report.delivered += 1
        return report

    async def close(self, timeout_s: float) -> DeliveryReport:
        report = await self.flush()
        await self._sender.close()
        return report


class SplunkHecOutput:
    """HEC event envelopes around the OCSF JSON, sent by a :class:`HecSender`."""

    name = "splunk-hec"

    def __init__(
        self,
        sender: HecSender,
        *,
        source: str = "minerlens",
        sourcetype: str = "ocsf:detection_finding",
        index: str = "",
        host: str = "",
    ) -> None:
        self._sender = sender
        self._source, self._sourcetype, self._index, self._host = source, sourcetype, index, host

    async def start(self) -> None:
        await self._sender.start()

    def submit(self, alert: Alert, ref: object) -> None:
        payload = hec_event(
            alert.view,
            alert.document,
            source=self._source,
            sourcetype=self._sourcetype,
            index=self._index or None,
            host=self._host or None,
        )
        self._sender.submit(payload, ref)

    async def flush(self) -> DeliveryReport:
        return await self._sender.flush()

    async def close(self, timeout_s: float) -> DeliveryReport:
        return await self._sender.close(timeout_s)


def hec_config(settings: SiemSettings) -> HecConfig:
    verify: bool | str = settings.hec_verify_tls
    if settings.hec_verify_tls and settings.hec_ca_file is not None:
        verify = str(settings.hec_ca_file)
    return HecConfig(
        url=settings.hec_url,
        token=settings.resolved_hec_token(),
        batch_max_events=settings.hec_batch_max_events,
        batch_max_bytes=settings.hec_batch_max_bytes,
        flush_interval_s=settings.hec_flush_interval_s,
        queue_max_events=settings.hec_queue_max_events,
        max_retries=settings.hec_max_retries,
        backoff_initial_s=settings.hec_backoff_initial_s,
        backoff_max_s=settings.hec_backoff_max_s,
        timeout_s=settings.hec_timeout_s,
        verify=verify,
        gzip=settings.hec_gzip,
    )


def make_output(settings: SiemSettings, metrics: SiemMetrics, *, stream: TextIO | None = None) -> Output:
    """The output ``settings.output`` names. ``stream`` replaces stdout (ecs/stdout outputs; for tests)."""
    if settings.output == "stdout":
        return JsonLinesOutput("stdout", stream or sys.stdout, lambda a: a.document)
    if settings.output == "ecs":
        if stream is None and settings.ecs_path not in ("", "-"):
            file = open(settings.ecs_path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
            return JsonLinesOutput("ecs", file, lambda a: view_to_ecs(a.view), owns_stream=True)
        return JsonLinesOutput("ecs", stream or sys.stdout, lambda a: view_to_ecs(a.view))
    if settings.output in ("falcosidekick", "alertmanager"):
        verify: bool | str = settings.webhook_verify_tls
        if settings.webhook_verify_tls and settings.webhook_ca_file is not None:
            verify = str(settings.webhook_ca_file)
        config = WebhookConfig(
            url=settings.webhook_url,
            token=settings.resolved_webhook_token(),
            timeout_s=settings.webhook_timeout_s,
            max_retries=settings.webhook_max_retries,
            verify=verify,
        )
        return FalcosidekickOutput(config) if settings.output == "falcosidekick" else AlertmanagerOutput(config)
    if settings.output == "cef-syslog":
        sender = SyslogSender(
            settings.syslog_host,
            settings.syslog_port,
            settings.syslog_transport,
            timeout_s=settings.syslog_timeout_s,
            max_udp_bytes=settings.syslog_max_udp_bytes,
        )
        return CefSyslogOutput(
            sender,
            facility=settings.syslog_facility,
            app_name=settings.syslog_app_name,
            hostname=settings.syslog_hostname,
            metrics=metrics,
        )
    return SplunkHecOutput(
        HecSender(hec_config(settings), metrics),
        source=settings.hec_source,
        sourcetype=settings.hec_sourcetype,
        index=settings.hec_index,
        host=settings.hec_host,
    )
