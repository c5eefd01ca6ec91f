"""ASGI middleware: request-body size limit and per-route metrics (pure ASGI: no per-request task overhead)."""

from __future__ import annotations

import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from minerlens_explainer.http_errors import error_response
from minerlens_explainer.metrics import Metrics


class BodyLimit:
    """Refuse bodies over ``max_bytes``: by Content-Length up front, else while the body streams in (413)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    await error_response(400, "invalid Content-Length")(scope, receive, send)
                    return
                if length > self.max_bytes:
                    await self._too_large()(scope, receive, send)
                    return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, f"request body over {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)

    def _too_large(self) -> ASGIApp:
        return error_response(413, f"request body over {self.max_bytes} bytes")


class RequestMetrics:
    """Count and time requests by route template (``/v1/pods/{namespace}/{pod}``), not by raw path; the time
    spent in the app is also sent back as ``Server-Timing: app;dur=<ms>``."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        t0 = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                took = (time.perf_counter() - t0) * 1000
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"server-timing", f"app;dur={took:.3f}".encode())]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(path, str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - t0)
