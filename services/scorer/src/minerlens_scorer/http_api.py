"""The scorer's HTTP port: ``/metrics`` (Prometheus), ``/healthz`` (alive) and ``/readyz`` (serving)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Status = Callable[[], dict[str, object]]


def make_app(registry: CollectorRegistry, health: Status, ready: Status) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _json(state: dict[str, object]) -> web.Response:
        return web.json_response(state, status=200 if state.get("ok") else 503)

    async def healthz(_: web.Request) -> web.Response:
        return _json(health())

    async def readyz(_: web.Request) -> web.Response:
        return _json(ready())

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner and the bound port (``port`` 0 picks a free one)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    addresses = runner.addresses
    bound = int(addresses[0][1]) if addresses else port
    return runner, bound
