"""The far end of a keepalive client's connection, run outside the pod: ``python -m
minerlens_lab.benign.keepalive_server tcp|ws|longpoll --port P --period S``.

``tcp``: answers each ``PING n`` line with ``PONG n``.
``ws``: an aiohttp WebSocket endpoint (``/ws``) that pushes a small JSON notification every ``period``
seconds; protocol pings and pongs as the client's heartbeat asks.
``longpoll``: an aiohttp endpoint (``/poll?timeout=T``) that holds each request until the next event
(one every ``period`` seconds) or the timeout, as watch/long-poll APIs (Kubernetes watches, Consul
blocking queries, chat back-ends) do.
Each line on stdout says what was served (the lab keeps it in the run's work directory).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time


def _say(*parts: object) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


async def _tcp(port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _say("connected")
        try:
            while line := await reader.readline():
                words = line.decode(errors="replace").split()
                if len(words) == 2 and words[0] == "PING":
                    writer.write(f"PONG {words[1]}\n".encode())
                    await writer.drain()
                    _say("pong", words[1])
        finally:
            writer.close()
            _say("closed")

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


async def _aiohttp(kind: str, port: int, period: float) -> None:
    from aiohttp import WSMsgType, web

    event = asyncio.Event()
    seq = 0

    async def tick() -> None:
        nonlocal event, seq
        while True:
            await asyncio.sleep(period)
            seq += 1
            event.set()
            event = asyncio.Event()

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse(autoping=True)
        await sock.prepare(request)
        _say("ws-connected")

        async def push() -> None:
            while not sock.closed:
                await event.wait()
                await sock.send_str(json.dumps({"seq": seq, "ts": time.time(), "kind": "notification"}))
                _say("pushed", seq)

        pusher = asyncio.create_task(push())
        try:
            async for msg in sock:
                if msg.type == WSMsgType.TEXT:
                    await sock.send_str(json.dumps({"ack": msg.data[:64]}))
        finally:
            pusher.cancel()
            _say("ws-closed")
        return sock

    async def poll(request: web.Request) -> web.Response:
        try:
            timeout = min(60.0, max(0.1, float(request.query.get("timeout", "25"))))
        except ValueError:
            return web.Response(status=400, text="bad timeout\n")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
            _say("event", seq)
            return web.json_response({"seq": seq, "events": [{"kind": "update", "seq": seq}]})
        _say("timeout")
        return web.json_response({"seq": seq, "events": []})

    app = web.Application()
    app.router.add_get("/ws" if kind == "ws" else "/poll", ws if kind == "ws" else poll)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await tick()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("kind", choices=["tcp", "ws", "longpoll"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--period", type=float, default=5.0)
    args = ap.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_tcp(args.port) if args.kind == "tcp" else _aiohttp(args.kind, args.port, args.period))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
