"""Run the exporter: HTTP probes, signal handling, consumer and output wired together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import TextIO

from minerlens_core.http_probes import probe_app, serve
from minerlens_core.settings import KafkaSettings

from minerlens_siem.consumer import AlertConsumer
from minerlens_siem.delivery import DeliveryReport
from minerlens_siem.metrics import SiemMetrics
from minerlens_siem.outputs import make_output
from minerlens_siem.settings import SiemSettings

log = logging.getLogger(__name__)


def ready(consumer: AlertConsumer) -> dict[str, object]:
    """Serving: consuming, and not waiting for the SIEM or Kafka."""
    state = consumer.progress.health()
    return {**state, "ok": bool(state["ok"]) and consumer.consuming and "waiting_for" not in state}


async def run_service(
    settings: SiemSettings,
    kafka: KafkaSettings,
    *,
    seconds: float | None = None,
    stop: asyncio.Event | None = None,
    stream: TextIO | None = None,
    metrics: SiemMetrics | None = None,
) -> tuple[AlertConsumer, DeliveryReport]:
    """Consume until SIGTERM/SIGINT, ``stop`` or ``seconds``; then flush the output and stop cleanly.

    ``/metrics``, ``/healthz`` (the consumer's progress) and ``/readyz`` are served on ``metrics_port``.
    """
    metrics = metrics or SiemMetrics()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    consumer = AlertConsumer(settings, kafka, make_output(settings, metrics, stream=stream), metrics)
    runner = None
    if settings.metrics_port:
        app = probe_app(metrics.registry, consumer.progress.health, lambda: ready(consumer))
        runner, port = await serve(app, settings.metrics_host, settings.metrics_port)
        log.info("/metrics, /healthz, /readyz on http://%s:%d", settings.metrics_host, port)
    timer = loop.call_later(seconds, stop.set) if seconds is not None else None
    try:
        report = await consumer.run(stop)
    finally:
        if timer is not None:
            timer.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        if runner is not None:
            await runner.cleanup()
    return consumer, report
