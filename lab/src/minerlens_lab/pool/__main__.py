"""Run the lab pool as a process of its own (e.g. inside a network namespace, next to a real miner)::

    python -m minerlens_lab.pool --host 127.0.0.1 --port 3333 --share-interval 30 --ready-file /tmp/ready

It serves until SIGTERM/SIGINT. ``--ready-file`` is written (JSON: host, port, pid) once it listens and
its verifiers are warm; ``--stats-file`` gets every login's counters when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

from minerlens_lab.miners.pow import ALGORITHMS
from minerlens_lab.pool.config import PROFILES, PoolConfig
from minerlens_lab.pool.server import PoolServer


def _start_diff(text: str) -> tuple[str, int]:
    algo, sep, value = text.partition("=")
    if not sep or algo not in ALGORITHMS or not value.isdigit() or int(value) < 1:
        msg = f"want ALGO=DIFFICULTY with ALGO in {sorted(ALGORITHMS)}, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return algo, int(value)


def _loopback(text: str) -> str:
    try:
        ok = ipaddress.ip_address(text).is_loopback
    except ValueError:
        ok = False
    if not ok:
        msg = f"the lab pool binds a loopback address only, not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return text


def _seed(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        msg = "the seed is 32 bytes of hex"
        raise argparse.ArgumentTypeError(msg)
    return raw


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m minerlens_lab.pool", description=__doc__.splitlines()[0])
    ap.add_argument("--host", type=_loopback, default="127.0.0.1")
    ap.add_argument("--port", type=int, default=3333)
    ap.add_argument("--profile", choices=sorted(PROFILES), default="realistic")
    ap.add_argument("--share-interval", type=float, help="vardiff target, seconds between shares")
    ap.add_argument("--retarget-time", type=float, help="seconds between vardiff checks (default 3 intervals)")
    ap.add_argument("--job-interval", type=float, nargs=2, metavar=("MIN", "MAX"), help="template refresh range (s)")
    ap.add_argument("--block-time", type=float, help="mean seconds between new blocks (0: none)")
    ap.add_argument("--start-diff", type=_start_diff, action="append", default=[], metavar="ALGO=N")
    ap.add_argument("--seed", type=_seed, help="RandomX seed, 64 hex digits (default random)")
    ap.add_argument("--warm-up", default="rx/0", help="comma-separated algorithms to prepare before ready")
    ap.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "minerlens" / "lab")
    ap.add_argument("--ready-file", type=Path)
    ap.add_argument("--stats-file", type=Path)
    ap.add_argument("--log-level", default="WARNING")
    return ap.parse_args(argv)


def config_from(args: argparse.Namespace) -> PoolConfig:
    cfg = PROFILES[args.profile]
    changes: dict[str, object] = {}
    if args.share_interval is not None:
        changes["share_interval_s"] = args.share_interval
    if args.retarget_time is not None:
        changes["retarget_s"] = args.retarget_time
    if args.job_interval is not None:
        changes["job_interval_s"] = (args.job_interval[0], args.job_interval[1])
    if args.block_time is not None:
        changes["block_time_s"] = args.block_time if args.block_time > 0 else None
    return replace(cfg, **changes)  # type: ignore[arg-type]


def _write_json(path: Path, doc: object) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


async def serve(args: argparse.Namespace) -> None:
    server = PoolServer(
        args.cache_dir,
        host=args.host,
        port=args.port,
        config=config_from(args),
        start_diff=dict(args.start_diff),
        seed=args.seed,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    host, port = await server.start()
    try:
        await server.warm_up(tuple(a for a in args.warm_up.split(",") if a))
        if args.ready_file is not None:
            _write_json(args.ready_file, {"host": host, "port": port, "pid": os.getpid()})
        print(f"listening {host}:{port}", flush=True)  # noqa: T201 - the process's one line of output
        await stop.wait()
    finally:
        if args.stats_file is not None:
            with contextlib.suppress(OSError):
                _write_json(args.stats_file, server.all_stats())
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
