"""The ``redis-server`` command lines of the lab's Redis workloads (in the pod, or outside it as a broker or
a replication master): loopback only, options in the order ``--port --bind <options> --dir [--logfile]``."""

from __future__ import annotations

from pathlib import Path

NO_PERSISTENCE = ("--save", "", "--appendonly", "no")
"""no RDB snapshots, no append-only file"""


def redis_server(port: int, directory: Path, *options: str, logfile: Path | None = None) -> list[str]:
    """``redis-server`` on 127.0.0.1:``port`` with ``options``, its files in ``directory``."""
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", *options, "--dir", str(directory)]
    if logfile is not None:
        argv += ["--logfile", str(logfile)]
    return argv
