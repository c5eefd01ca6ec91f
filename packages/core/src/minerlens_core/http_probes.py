"""The small HTTP port of the Kafka services: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``.

Kubernetes probes and Prometheus scrape it. ``/healthz`` answers 200 while ``health()["ok"]`` (restart the
pod otherwise: a consumer's health comes from ``minerlens_core.kafka.ConsumerProgress``); ``/readyz`` 200
while ``ready()["ok"]`` (serving; left out when a service has no readiness of its own). Both return the
state as JSON, with a ``reason`` when not ok; a status function may be a coroutine function. Needs the
``http`` extra (aiohttp, prometheus-client).
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

Status = Callable[[], dict[str, object]] | Callable[[], Awaitable[dict[str, object]]]


def _dumps(value: object) -> str:
    return json.dumps(value, default=str)


def probe_app(registry: CollectorRegistry, health: Status, ready: Status | None = None) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def answer(status: Status) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(_: web.Request) -> web.Response:
            try:
                result = status()
                state = await result if inspect.isawaitable(result) else result
            except Exception as exc:  # a probe that cannot tell is a failed probe, with the reason
                log.exception("status probe failed")
                state = {"ok": False, "reason": f"status check failed: {type(exc).__name__}: {exc}"}
            return web.json_response(state, status=200 if state.get("ok") else 503, dumps=_dumps)

        return handler

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", answer(health))
    if ready is not None:
        app.router.add_get("/readyz", answer(ready))
    return app


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (``cleanup()`` stops it) and the bound port (``port`` 0: a free one)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    addresses = runner.addresses
    return runner, int(addresses[0][1]) if addresses else port
