"""A render farm's dispatcher, run outside the pod: ``python -m minerlens_lab.benign.job_server --port P
--seconds S --size WxH --preset X``.

Accepts workers on 127.0.0.1:P; hands each a render job (a JSON line: clip length, size, x264 preset,
frame rate) whenever it reports the previous one done, on the same connection, and prints one JSON line
per finished job (the lab counts them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys


async def _serve(args: argparse.Namespace) -> None:
    next_id = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal next_id
        try:
            while True:
                next_id += 1
                job = {"id": next_id, "seconds": args.seconds, "size": args.size, "preset": args.preset, "rate": 25}
                writer.write((json.dumps(job) + "\n").encode())
                await writer.drain()
                line = await reader.readline()
                if not line:
                    return
                try:
                    done = json.loads(line)
                except ValueError:
                    return
                if not isinstance(done, dict) or done.get("id") != job["id"]:
                    return
                sys.stdout.write(json.dumps({"done": done}) + "\n")
                sys.stdout.flush()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", args.port)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--preset", default="veryfast")
    args = ap.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
