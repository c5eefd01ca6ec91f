"""Run the exporter: metrics port, signal handling, consumer and output wired together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import TextIO

from minerlens_core.settings import KafkaSettings
from prometheus_client import start_http_server

from minerlens_siem.consumer import AlertConsumer
from minerlens_siem.delivery import DeliveryReport
from minerlens_siem.metrics import SiemMetrics
from minerlens_siem.outputs import make_output
from minerlens_siem.settings import SiemSettings

log = logging.getLogger(__name__)


async def run_service(
    settings: SiemSettings,
    kafka: KafkaSettings,
    *,
    seconds: float | None = None,
    stop: asyncio.Event | None = None,
    stream: TextIO | None = None,
    metrics: SiemMetrics | None = None,
) -> tuple[AlertConsumer, DeliveryReport]:
    """Consume until SIGTERM/SIGINT, ``stop`` or ``seconds``; then flush the output and stop cleanly."""
    metrics = metrics or SiemMetrics()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    server = None
    if settings.metrics_port:
        server, _ = start_http_server(settings.metrics_port, settings.metrics_host, registry=metrics.registry)
        log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    timer = loop.call_later(seconds, stop.set) if seconds is not None else None
    consumer = AlertConsumer(settings, kafka, make_output(settings, metrics, stream=stream), metrics)
    try:
        report = await consumer.run(stop)
    finally:
        if timer is not None:
            timer.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        if server is not None:
            server.shutdown()
    return consumer, report
