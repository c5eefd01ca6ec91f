"""A fake Splunk HTTP Event Collector (a real aiohttp server on loopback) for the HEC tests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.siem.loopback import serve_loopback

TOKEN = "5f0a7c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def events(self) -> list[dict[str, Any]]:
        return split_concatenated(self.body)


@dataclass
class FakeHec:
    """A fake Splunk HEC: fails the first ``fail_first`` requests with ``fail_status``, else 200 Success."""

    fail_first: int = 0
    fail_status: int = 503
    retry_after: str | None = None
    reject_marker: str | None = None
    delay_s: float = 0.0
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(Recorded(request.method, request.path, dict(request.headers), body, time.monotonic()))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if request.headers.get("Authorization") != f"Splunk {TOKEN}":
            return web.json_response({"text": "Invalid authorization", "code": 4}, status=403)
        if len(self.requests) <= self.fail_first:
            headers = {"Retry-After": self.retry_after} if self.retry_after else None
            return web.json_response({"text": "Server is busy", "code": 9}, status=self.fail_status, headers=headers)
        # aiohttp has already inflated a Content-Encoding: gzip body (and refuses a corrupt one)
        events = split_concatenated(body)
        for n, event in enumerate(events):
            if self.reject_marker and self.reject_marker in json.dumps(event):
                return web.json_response(
                    {"text": "Invalid data format", "code": 6, "invalid-event-number": n}, status=400
                )
        return web.json_response({"text": "Success", "code": 0})


def split_concatenated(body: bytes) -> list[dict[str, Any]]:
    """HEC bodies are JSON objects one after another (not an array)."""
    decoder = json.JSONDecoder()
    text = body.decode()
    out, i = [], 0
    while i < len(text):
        obj, i = decoder.raw_decode(text, i)
        out.append(obj)
        while i < len(text) and text[i].isspace():
            i += 1
    return out


@asynccontextmanager
async def serve_fake_hec(fake: FakeHec | None = None, port: int = 0) -> AsyncIterator[FakeHec]:
    fake = fake or FakeHec()
    async with serve_loopback("/services/collector/event", fake.handle, port) as url:
        fake.url = url
        yield fake
