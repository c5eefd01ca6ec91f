"""Splunk HTTP Event Collector: event envelopes and a batching sender with retries and a bounded queue.

Request: ``POST <url>/services/collector/event`` with ``Authorization: Splunk <token>`` and a body of
concatenated JSON objects (not a JSON array), one per event::

    {"time":1767225600.123,"host":"node-1","source":"minerlens","sourcetype":"ocsf:detection_finding",
     "index":"security","event":{...OCSF Detection Finding...}}

Retries, with exponential backoff and jitter (``minerlens_core.retrying``; ``Retry-After`` honoured), on
connection errors, timeouts, 429 and 5xx. 401, 403 and 404 (bad token or URL) are not retried and the events are
reported *lost* (kept for later by the caller). Any other 4xx is final: the events are *rejected*. When Splunk names
the bad event of a batch (``invalid-event-number``) the events before it count as delivered and the
events after it are sent again. The queue is bounded in events: when full, the oldest waiting event is
dropped, counted in ``minerlens_siem_hec_queue_dropped_total`` and reported *lost* to the next flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

import httpx
from minerlens_core.retrying import Backoff, RetryLater, retry

from minerlens_siem.alert_view import AlertView
from minerlens_siem.delivery import DeliveryReport
from minerlens_siem.metrics import SiemMetrics

log = logging.getLogger(__name__)

EVENT_PATH = "/services/collector/event"
SOURCETYPE = "ocsf:detection_finding"
CONFIGURATION_ERRORS = frozenset({401, 403, 404})
"""4xx that say the sender is misconfigured (token, URL), not that the events are bad: not retried,
reported *lost* (the consumer keeps them in Kafka) rather than *rejected* (dead-lettered)."""


def hec_event(
    view: AlertView,
    document: dict[str, Any],
    *,
    source: str = "minerlens",
    sourcetype: str = SOURCETYPE,
    index: str | None = None,
    host: str | None = None,
) -> bytes:
    """One HEC event envelope around the OCSF ``document`` (compact JSON, UTF-8)."""
    envelope: dict[str, Any] = {"time": round(view.time_ms / 1000, 3)}
    if host or view.node:
        envelope["host"] = host or view.node
    envelope["source"] = source
    envelope["sourcetype"] = sourcetype
    if index:
        envelope["index"] = index
    envelope["event"] = document
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class HecConfig:
    url: str
    """base URL of the collector, e.g. ``https://splunk.example:8088`` (the event path is appended)"""
    token: str
    batch_max_events: int = 100
    batch_max_bytes: int = 1_000_000
    flush_interval_s: float = 1.0
    queue_max_events: int = 10_000
    max_retries: int = 5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    timeout_s: float = 10.0
    verify: bool | str = True
    gzip: bool = False

    @property
    def endpoint(self) -> str:
        return self.url.rstrip("/") + EVENT_PATH


@dataclass
class _Item:
    payload: bytes
    ref: object


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def _invalid_event_number(response: httpx.Response) -> int | None:
    try:
        body = response.json()
    except ValueError:
        return None
    n = body.get("invalid-event-number") if isinstance(body, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) else None


class HecSender:
    """Queue events with :meth:`submit`; one background task sends them in order, in batches.

    :meth:`flush` waits until everything submitted so far has been delivered, rejected or given up
    and returns what happened since the previous flush. :meth:`close` flushes (bounded by a timeout)
    and stops; what is still queued then is reported lost.
    """

    def __init__(
        self,
        config: HecConfig,
        metrics: SiemMetrics | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._cfg = config
        self._metrics = metrics or SiemMetrics()
        self._transport = transport
        self._queue: deque[_Item] = deque()
        self._in_flight: list[_Item] = []
        self._report = DeliveryReport()
        self._has_items = asyncio.Event()
        self._batch_ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._flushing = 0
        self._client: httpx.AsyncClient | None = None
        self._worker: asyncio.Task[None] | None = None
        self.requests = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def start(self) -> None:
        if self._worker is not None:
            return
        self._client = httpx.AsyncClient(
            timeout=self._cfg.timeout_s, verify=self._cfg.verify, transport=self._transport
        )
        self._worker = asyncio.create_task(self._run(), name="hec-sender")

    def submit(self, payload: bytes, ref: object = None) -> None:
        """Queue one event (a serialised HEC envelope); never blocks. Drops the oldest when full."""
        self._queue.append(_Item(payload, ref))
        while len(self._queue) > self._cfg.queue_max_events:
            dropped = self._queue.popleft()
            self._report.lost.append((dropped.ref, "HEC queue full: dropped (oldest first)"))
            self._metrics.hec_dropped.inc()
        self._metrics.hec_queue.set(len(self._queue))
        self._idle.clear()
        self._has_items.set()
        if len(self._queue) >= self._cfg.batch_max_events:
            self._batch_ready.set()

    async def flush(self) -> DeliveryReport:
        self._flushing += 1
        self._batch_ready.set()
        try:
            await self._idle.wait()
        finally:
            self._flushing -= 1
        report, self._report = self._report, DeliveryReport()
        return report

    async def close(self, timeout_s: float = 10.0) -> DeliveryReport:
        report = DeliveryReport()
        if self._worker is not None:
            try:
                report = await asyncio.wait_for(self.flush(), timeout_s)
            except TimeoutError:
                log.warning("HEC flush did not finish in %.1fs; %d events undelivered", timeout_s, self.queued)
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        for item in [*self._in_flight, *self._queue]:
            self._report.lost.append((item.ref, "sender closed before delivery"))
        self._in_flight.clear()
        self._queue.clear()
        self._metrics.hec_queue.set(0)
        report.merge(self._report)
        self._report = DeliveryReport()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        return report

    def _take_batch(self) -> list[_Item]:
        batch: list[_Item] = []
        size = 0
        while self._queue and len(batch) < self._cfg.batch_max_events:
            nxt = len(self._queue[0].payload)
            if batch and size + nxt > self._cfg.batch_max_bytes:
                break
            batch.append(self._queue.popleft())
            size += nxt
        self._metrics.hec_queue.set(len(self._queue))
        return batch

    async def _run(self) -> None:
        while True:
            await self._has_items.wait()
            if not self._flushing and len(self._queue) < self._cfg.batch_max_events:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._batch_ready.wait(), self._cfg.flush_interval_s)
            self._batch_ready.clear()
            batch = self._take_batch()
            self._in_flight = batch
            try:
                await self._deliver(batch)
            except Exception as exc:  # the sender task must survive anything, or flush() hangs
                log.exception("HEC delivery failed unexpectedly")
                self._give_up(batch, f"unexpected error: {exc!r}")
            self._in_flight = []
            if not self._queue:
                self._has_items.clear()
                self._idle.set()

    def _give_up(self, batch: list[_Item], reason: str) -> None:
        self._metrics.hec_given_up.inc(len(batch))
        self._report.lost += [(item.ref, reason) for item in batch]

    def _headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Splunk {self._cfg.token}", "Content-Type": "application/json"}
        if self._cfg.gzip:
            headers["Content-Encoding"] = "gzip"
        return headers

    def _backoff(self) -> Backoff:
        # jitter of up to half the first delay, so that senders restarted together do not retry together
        cfg = self._cfg
        return Backoff(initial_s=cfg.backoff_initial_s, max_s=cfg.backoff_max_s, jitter_s=cfg.backoff_initial_s / 2)

    async def _post(self, content: bytes) -> httpx.Response:
        """One request; a connection error, timeout, 429 or 5xx raises ``RetryLater``."""
        assert self._client is not None
        self.requests += 1
        try:
            response = await self._client.post(self._cfg.endpoint, content=content, headers=self._headers())
        except httpx.TransportError as exc:
            self._metrics.hec_requests.labels(status="error").inc()
            msg = f"HEC unreachable: {type(exc).__name__}: {exc}"
            raise RetryLater(msg) from exc
        code = response.status_code
        self._metrics.hec_requests.labels(status=str(code)).inc()
        if code == 429 or code >= 500:
            msg = f"HEC answered HTTP {code}: {response.text[:300]}"
            raise RetryLater(msg, retry_after_s=_retry_after(response))
        return response

    async def _send(self, batch: list[_Item]) -> httpx.Response | None:
        """POST the batch, retried; None when the retries ran out (the batch is then given up)."""
        body = b"".join(item.payload for item in batch)
        content = gzip.compress(body) if self._cfg.gzip else body
        retries = 0

        def retried(_exc: BaseException, _delay: float) -> None:
            nonlocal retries
            retries += 1
            self._metrics.hec_retries.inc()

        try:
            return await retry(
                lambda: self._post(content),
                retry_on=(RetryLater,),
                backoff=self._backoff(),
                max_retries=self._cfg.max_retries,
                describe=f"HEC delivery of {len(batch)} events",
                log=log,
                on_retry=retried,
                level=logging.INFO,
            )
        except RetryLater as exc:
            log.warning("giving up on %d HEC events after %d retries: %s", len(batch), retries, exc)
            self._give_up(batch, f"{exc} (gave up after {retries} retries)")
            return None

    async def _deliver(self, batch: list[_Item]) -> None:
        while batch:
            response = await self._send(batch)
            if response is None:
                return
            code = response.status_code
            if 200 <= code < 300:
                self._report.delivered += len(batch)
                return
            reason = f"HEC answered HTTP {code}: {response.text[:300]}"
            if code in CONFIGURATION_ERRORS:
                log.error("%s: check the HEC URL and token; %d events not delivered", reason, len(batch))
                self._give_up(batch, reason)
                return
            batch = self._reject(batch, response, reason)

    def _reject(self, batch: list[_Item], response: httpx.Response, reason: str) -> list[_Item]:
        """Handle a final 4xx; returns the events still to send (those after the one Splunk named)."""
        bad = _invalid_event_number(response)
        if bad is not None and 0 <= bad < len(batch):
            self._report.delivered += bad
            self._report.rejected.append((batch[bad].ref, reason))
            self._metrics.hec_rejected.inc()
            return batch[bad + 1 :]
        self._report.rejected += [(item.ref, reason) for item in batch]
        self._metrics.hec_rejected.inc(len(batch))
        return []
