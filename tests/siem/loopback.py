"""One real aiohttp server on loopback for the fake receivers of the SIEM tests (Splunk HEC, falcosidekick,
Alertmanager): the tests talk HTTP to it exactly as to the real receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve_loopback(path: str, handle: Handler, port: int = 0) -> AsyncIterator[str]:
    """Serve ``POST path`` (an aiohttp route, e.g. ``/{tail:.*}``) with ``handle`` on 127.0.0.1 (a free port
    unless ``port``); yields the base URL ``http://127.0.0.1:<port>``."""
    app = web.Application()
    app.router.add_post(path, handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{bound}"
    finally:
        await runner.cleanup()
