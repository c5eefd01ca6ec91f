"""A quiet pod's one long-lived connection: ``python -m minerlens_lab.benign.keepalive_client
tcp|ws|longpoll --port P --period S --log F``.

``tcp``: one TCP connection (SO_KEEPALIVE on), ``PING n`` every ``period`` seconds, wait for ``PONG n``.
``ws``: an aiohttp WebSocket client with a protocol heartbeat every ``period`` seconds, receiving the
server's notifications and acknowledging each.
``longpoll``: one HTTP/1.1 keep-alive connection, ``GET /poll?timeout=<period x 3>`` again and again.
Each answer appends ``"<seconds> <answers>"`` to the log. A dropped connection is re-opened after 1 s
(the log counts reconnects) - like the service clients these imitate, it never gives up.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import socket
import time
from pathlib import Path


class _Log:
    def __init__(self, path: Path) -> None:
        self.path, self.t0, self.answers, self.reconnects = path, time.monotonic(), 0, 0

    def answer(self) -> None:
        self.answers += 1
        with self.path.open("a") as f:
            f.write(f"{time.monotonic() - self.t0:.1f} {self.answers} {self.reconnects}\n")


def _tcp(port: int, period: float, log: _Log) -> None:
    n = 0
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=period + 10) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                f = s.makefile("rb")
                while True:
                    n += 1
                    s.sendall(f"PING {n}\n".encode())
                    if f.readline().split() != [b"PONG", str(n).encode()]:
                        break
                    log.answer()
                    time.sleep(period)
        except OSError:
            pass
        log.reconnects += 1
        time.sleep(1.0)


async def _ws(port: int, period: float, log: _Log) -> None:
    import aiohttp

    while True:
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(f"http://127.0.0.1:{port}/ws", heartbeat=period) as ws,
            ):
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        data = json.loads(msg.data)
                        if "seq" in data:
                            log.answer()
                            await ws.send_str(json.dumps({"seen": data["seq"]}))
                    elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        break
        except (aiohttp.ClientError, OSError, ValueError):
            pass
        log.reconnects += 1
        await asyncio.sleep(1.0)


def _longpoll(port: int, period: float, log: _Log) -> None:
    timeout = period * 3
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout + 10)
        try:
            while True:
                conn.request("GET", f"/poll?timeout={timeout:g}")
                resp = conn.getresponse()
                json.loads(resp.read())
                if resp.status != 200:
                    break
                log.answer()
        except (OSError, http.client.HTTPException, ValueError):
            pass
        finally:
            conn.close()
        log.reconnects += 1
        time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("kind", choices=["tcp", "ws", "longpoll"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--period", type=float, default=5.0)
    ap.add_argument("--log", type=Path, required=True)
    args = ap.parse_args(argv)
    log = _Log(args.log)
    if args.kind == "tcp":
        _tcp(args.port, args.period, log)
    elif args.kind == "ws":
        asyncio.run(_ws(args.port, args.period, log))
    else:
        _longpoll(args.port, args.period, log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
