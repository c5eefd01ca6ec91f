"""The ``api`` boundary: HTTP requests to the explainer's FastAPI app, in-process, on the real Redis.

An input is one request: a control byte, then text laid out like an HTTP/1.1 request with ``\\n`` line
ends: the request target (path and query) on the first line, header lines ``name: value``, an empty
line, the body. The control byte picks

* bits 0-2: the method (``METHODS``: mostly GET and POST, sometimes HEAD, PUT, DELETE);
* bits 3-4: the credentials: the read token (0, 1), the admin token (2), or only what the input's own
  header lines say (3: none, garbage, anything);
* bits 5-7: a route prefix put before the target (``PREFIXES``, 0: none), so that inputs whose path
  mutations went astray still reach the handlers.

The bytes are sent as a server would pass them to the app: bytes a request line cannot carry are
percent-encoded (the path the app sees is any text, ``..`` segments included) and cut at ``MAX_TARGET``,
header lines a server would refuse (not a token name, control characters in the value) are left out,
and ``Content-Length`` is the body's (a server refuses a request whose framing is wrong before the app
sees it).

The app (``create_app``, the production settings but a key prefix of its own, short TTLs, Kafka ingestion
off) serves the shipped models (``models/default`` and ``models/lstm-ae``) with the real explainers and
the real Redis (``MINERLENS_REDIS_URL``, default ``redis://127.0.0.1:16379/0``). Two pods are stored
first (windows, verdicts, an open alert) so that requests can reach 200s. Keys live under
``fuzz:explainer:<run>:`` (``MINERLENS_FUZZ_REDIS_PREFIX``) and are removed when the process exits
normally, or by ``tests/fuzz/run.py`` after an atheris run; they expire in minutes anyway.

Documented outcome: any status below 500; a 4xx carries a JSON body ``{"error": ..., "message": ...}``
and a JSON answer parses. A 5xx, an exception out of the app, an error the app logged and survived, or a
request that takes more than ``REQUEST_TIMEOUT_S`` is a bug.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import re
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import httpx
from minerlens_explainer.runtime import Runtime

from tests.fuzz.outcomes import OUTCOMES, FuzzFailure, logged_errors

ROOT = Path(__file__).resolve().parents[2]
MODELS = (ROOT / "models" / "default", ROOT / "models" / "lstm-ae")
METHODS = ("GET", "GET", "GET", "POST", "POST", "HEAD", "PUT", "DELETE")
PREFIXES = (
    "", "/v1/pods/", "/v1/pods/team-a/miner-1", "/v1/explain", "/v1/models", "/v1/admin/", "/v1/", "/",
)  # fmt: skip
READ_TOKEN = "fuzz-read-9c1f3e0a7b5d4c2e8f6a1b3d5e7f9a0c"
ADMIN_TOKEN = "fuzz-admin-2b4d6f8a0c1e3a5c7e9b1d3f5a7c9e0b"
REQUEST_TIMEOUT_S = 8.0
MAX_TARGET = 8192
"""Longer request lines are refused by the server (uvicorn/h11: 16 KiB for the whole head): cut here."""
REDIS_URL = os.environ.get("MINERLENS_REDIS_URL", "").strip() or "redis://127.0.0.1:16379/0"
_TCHAR = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_FIELD_VALUE = re.compile(rb"^[\t\x20-\x7e\x80-\xff]*$")
_TARGET_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~!$&'()*+,;=:@/?%")
"""Sent as they are; any other byte percent-encoded, ``.`` too: the client would remove ``..`` segments, a
server passes them (the app sees the same decoded path either way)."""


def redis_prefix() -> str:
    """The key prefix of this run: ``MINERLENS_FUZZ_REDIS_PREFIX`` (set by ``run.py``), else a fresh one."""
    return os.environ.get("MINERLENS_FUZZ_REDIS_PREFIX") or f"fuzz:explainer:{uuid.uuid4().hex[:10]}:"


def purge(prefix: str, url: str = REDIS_URL) -> int:
    """Delete every key under ``prefix``; how many there were."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 1000):
            client.unlink(*keys[i : i + 1000])
        return len(keys)
    finally:
        client.close()


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: list[tuple[bytes, bytes]]
    body: bytes


def parse(data: bytes) -> Request:
    """The request an input stands for (module docstring)."""
    control = data[0] if data else 0
    head, _, body = data[1:].partition(b"\n\n")
    first, *lines = head.split(b"\n")
    raw = PREFIXES[control >> 5].encode() + first
    target = "".join(chr(b) if b in _TARGET_SAFE else f"%{b:02X}" for b in raw)
    if not target.startswith("/"):
        target = "/" + target
    target = target[:MAX_TARGET]
    auth = (control >> 3) & 3
    headers = []
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep or not _TCHAR.match(name) or not _FIELD_VALUE.match(value.strip()):
            continue  # a server would refuse the request (400): the line is left out
        low = name.lower()
        if low in (b"content-length", b"transfer-encoding") or (low == b"authorization" and auth != 3):
            continue  # the body's own length; the control byte's credentials
        headers.append((name.lower(), value.strip()))
    if auth < 3:
        headers.append((b"authorization", f"Bearer {ADMIN_TOKEN if auth == 2 else READ_TOKEN}".encode()))
    return Request(METHODS[control & 7], target, headers, body)


def unparse(method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b"", auth: int = 0) -> bytes:
    """The input of a request (``auth``: 0 read token, 2 admin token, 3 only ``headers``)."""
    control = METHODS.index(method) | auth << 3
    lines = [target.encode()] + [f"{k}: {v}".encode() for k, v in (headers or {}).items()]
    return bytes([control]) + b"\n".join(lines) + b"\n\n" + body


class Api:
    """The app with its lifespan, on an event loop of its own, and the pods stored for it."""

    def __init__(self) -> None:
        from minerlens_explainer.app import create_app
        from minerlens_explainer.settings import ExplainerSettings

        from tests.fuzz.targets import scratch

        self.prefix = redis_prefix()
        tokens = scratch() / "tokens"
        tokens.write_text(f"read:{READ_TOKEN}\nadmin:{ADMIN_TOKEN}\n")
        self.settings = ExplainerSettings(
            tokens_file=tokens, models=list(MODELS), redis_url=REDIS_URL, key_prefix=self.prefix, ingest=False,
            redis_timeout_s=5.0, window_ttl_s=900, alert_ttl_s=900, cache_ttl_s=60,
            method_params={"lime": {"num_samples": 300}},
        )  # fmt: skip
        self.loop = asyncio.new_event_loop()
        self.stack = AsyncExitStack()
        self.app = create_app(self.settings)
        self.client = self.loop.run_until_complete(self._start())
        atexit.register(self.close)

    async def _start(self) -> httpx.AsyncClient:
        await self.stack.enter_async_context(self.app.router.lifespan_context(self.app))
        transport = httpx.ASGITransport(app=self.app)  # an exception out of the app is raised here: a bug
        client = await self.stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url="http://api"))
        await store_pods(self.app.state.runtime)
        return client

    def send(self, request: Request) -> httpx.Response:
        url = "http://api" + request.target  # absolute: a target "//x" is a path, not a host
        call = self.client.request(request.method, url, headers=request.headers, content=request.body)
        try:
            return self.loop.run_until_complete(asyncio.wait_for(call, REQUEST_TIMEOUT_S))
        except TimeoutError:
            msg = f"{request.method} {request.target[:200]} took more than {REQUEST_TIMEOUT_S} s"
            raise FuzzFailure(msg) from None

    def close(self) -> None:
        if self.loop.is_closed():
            return
        try:
            self.loop.run_until_complete(self.stack.aclose())
        finally:
            self.loop.close()
            purge(self.prefix)


async def store_pods(runtime: Runtime) -> None:
    """The pods of ``tests.fuzz.seeds.api_pods`` through the ingestion's own code (windows, verdicts, alerts)."""
    from tests.fuzz.seeds import api_pods

    ingestor = runtime.ingestor()
    for topic, value in api_pods():
        await ingestor.handle(getattr(runtime.settings, f"{topic}_topic"), value)


@cache
def api() -> Api:
    """The app, started once per process; the seeds are sent once (the explainers load, matplotlib imports)."""
    from tests.fuzz.seeds import api_seeds

    a = Api()
    for data in api_seeds():
        a.send(parse(data))
    return a


def check(request: Request, response: httpx.Response) -> None:
    """The documented outcome of one request (module docstring)."""
    status, what = response.status_code, f"{request.method} {request.target[:300]}"
    if status >= 500:
        raise FuzzFailure(f"{what}: {status} {response.content[:500]!r}")
    media = response.headers.get("content-type", "").split(";")[0].strip()
    if request.method == "HEAD":
        return
    if 400 <= status < 500:
        try:
            body = json.loads(response.content)
        except ValueError:
            raise FuzzFailure(f"{what}: {status} without a JSON body: {response.content[:300]!r}") from None
        if not isinstance(body, dict) or not isinstance(body.get("message"), str) or "error" not in body:
            raise FuzzFailure(f"{what}: {status} body without error and message: {response.content[:300]!r}")
    elif media == "application/json":
        try:
            json.loads(response.content)
        except ValueError:
            raise FuzzFailure(f"{what}: {status} answer that is not JSON: {response.content[:300]!r}") from None


def api_target(data: bytes) -> None:
    request = parse(data)
    a = api()
    with logged_errors("minerlens_explainer") as errors:
        response = a.send(request)
    if errors:
        raise FuzzFailure(f"{request.method} {request.target[:300]}: the app logged an error: {errors[0]}")
    check(request, response)
    OUTCOMES[str(response.status_code)] += 1
