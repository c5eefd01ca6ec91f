"""The Faust plumbing of the featurizer worker (``app``): the ``faust.App`` and its settings, raw-bytes topics,
where windows, dead letters and control messages go (``Outputs``), the state table as the engine sees it
(``TableState``) and the web pages (``/metrics``, ``/healthz``, ``/readyz``).
"""

from __future__ import annotations

import logging
import socket
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.streams import _current_event
from faust.types import ChannelT, EventT, TableT
from faust.web import Request, Response, View
from minerlens_core.settings import KafkaSettings
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from minerlens_featurizer.outbox import Writes
from minerlens_featurizer.settings import FeaturizerSettings

log = logging.getLogger(__name__)
_METRICS_TYPE = "; ".join(p for p in CONTENT_TYPE_LATEST.split("; ") if not p.startswith("charset"))
"""aiohttp sets the charset itself and refuses it inside content_type"""


def faust_app(settings: FeaturizerSettings, kafka: KafkaSettings, partitions: int) -> faust.App:
    """The worker's Faust app: at-least-once, raw bytes, acks from all replicas, tables with changelogs."""
    return faust.App(
        settings.app_id,
        broker=broker_url(kafka),
        store=settings.store,
        datadir=str(settings.data_dir),
        autodiscover=False,
        topic_partitions=partitions,
        topic_replication_factor=settings.replication_factor,
        table_standby_replicas=settings.standby_replicas,
        processing_guarantee="at_least_once",
        broker_client_id=kafka.client_id,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        producer_acks=-1,
        producer_compression_type=None if kafka.compression == "none" else kafka.compression,
        producer_max_request_size=8 * 1024 * 1024,
        consumer_max_fetch_size=16 * 1024 * 1024,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=settings.web_enabled,
        web_bind=settings.web_bind,
        web_port=settings.web_port or free_port(settings.web_bind),
    )


def raw_schema() -> faust.Schema[bytes, bytes]:
    return faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


@dataclass(frozen=True)
class Outputs:
    """Where windows, dead letters and control messages go (Kafka topics; in-memory channels in unit tests)."""

    windows: ChannelT[Any]
    dead_letters: ChannelT[Any]
    control: ChannelT[Any]


def free_port(host: str) -> int:
    """An ephemeral port for ``web_port=0`` (Faust needs a real one); it is logged at start-up."""
    with socket.socket() as s:
        s.bind((host, 0))
        port = int(s.getsockname()[1])
    log.info("web server (/metrics, /healthz, /readyz) on %s:%d", host, port)
    return port


def broker_url(kafka: KafkaSettings) -> str:
    return ";".join(f"kafka://{h.strip()}" for h in kafka.bootstrap.split(",") if h.strip())


class TableState:
    """The engine's view of the Faust table (raw bytes keys and values)."""

    def __init__(self, table: TableT[bytes, bytes]) -> None:
        self.table = table

    def get(self, key: bytes) -> bytes | None:
        value = self.table.get(key)
        return bytes(value) if value is not None else None

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        return list(self.table.items())

    def apply(self, partition: int, writes: Writes, event: EventT[Any]) -> list[Awaitable[Any]]:
        """Write ``writes`` to the local store and the changelog partition; the futures resolve on delivery.

        The changelog messages are sent here rather than through ``table[key] = value`` because that
        path drops the send futures, and Faust's own pre-commit flush of its producer buffer gives up
        after 0.1 s (``ProducerBuffer.flush_atmost``): offsets could be committed ahead of the state.
        The event context is set for stores that pick their partition database from it (RocksDB).
        """
        sent: list[Awaitable[Any]] = []
        token = _current_event.set(weakref.ref(event))
        try:
            for key, value in writes.sets.items():
                sent.append(self.table.send_changelog(partition, key, value))
                self.table.data[key] = value
            for key in writes.deletes:
                if key in self.table.data:
                    sent.append(self.table.send_changelog(partition, key, None, value_serializer="raw"))
                    del self.table.data[key]
        finally:
            _current_event.reset(token)
        return sent


def add_pages(
    fapp: faust.App, registry: CollectorRegistry, health: Callable[[], dict[str, Any]], spec_tag: str
) -> None:
    """``/metrics``, ``/healthz`` (503 when ``health()`` says not ok) and ``/readyz`` (not rebalancing, tables
    recovered) on the worker's web server."""

    @fapp.page("/metrics")
    async def metrics(web: View, request: Request) -> Response:
        return web.bytes(generate_latest(registry), content_type=_METRICS_TYPE)

    @fapp.page("/healthz")
    async def healthz(web: View, request: Request) -> Response:
        body = health()
        return web.json(body, status=200 if body["ok"] else 503)

    @fapp.page("/readyz")
    async def readyz(web: View, request: Request) -> Response:
        ready = not fapp.rebalancing and cast(Any, fapp.tables).recovery.completed.is_set()
        body = {"ready": ready, "rebalancing": fapp.rebalancing, "spec": spec_tag}
        return web.json(body, status=200 if ready else 503)
