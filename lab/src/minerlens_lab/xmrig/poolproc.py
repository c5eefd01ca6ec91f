"""The lab pool as a separate process inside the miner's network namespace (``python -m minerlens_lab.pool``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minerlens_lab.pool.client import query_stats
from minerlens_lab.xmrig.fetch import XmrigError
from minerlens_lab.xmrig.netns import LoopbackNetns

POOL_PORT = 3333
READY_TIMEOUT_S = 120.0


@dataclass
class PoolProcess:
    netns: LoopbackNetns
    workdir: Path
    cache_dir: Path
    share_interval_s: float = 30.0
    profile: str = "realistic"
    start_diff: dict[str, int] = field(default_factory=dict)
    extra_args: tuple[str, ...] = ()
    port: int = POOL_PORT
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def log_path(self) -> Path:
        return self.workdir / "pool.log"

    @property
    def stats_path(self) -> Path:
        return self.workdir / "pool-stats.json"

    def argv(self) -> list[str]:
        argv = [
            *self.netns.exec_prefix(),
            sys.executable,
            "-m",
            "minerlens_lab.pool",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--profile",
            self.profile,
            "--share-interval",
            str(self.share_interval_s),
            "--cache-dir",
            str(self.cache_dir),
            "--ready-file",
            str(self.workdir / "pool.ready"),
            "--stats-file",
            str(self.stats_path),
            "--log-level",
            "INFO",
        ]
        for algo, diff in sorted(self.start_diff.items()):
            argv += ["--start-diff", f"{algo}={diff}"]
        return [*argv, *self.extra_args]

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Start it and wait until it listens with its RandomX verifier ready."""
        ready = self.workdir / "pool.ready"
        ready.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-1500:]
                self.stop()
                msg = f"the lab pool did not start in netns {self.netns.name}: {tail.strip()}"
                raise XmrigError(msg)
            time.sleep(0.05)
        doc = json.loads(ready.read_text())
        self.port = int(doc["port"])

    def stats(self, login: str) -> dict[str, Any]:
        """The login's counters, asked from inside the namespace (the pool is not reachable from outside)."""
        return self.netns.run_in(query_stats, self.address, login)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.proc = None
