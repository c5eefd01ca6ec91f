"""A miner workload: the lab's C miner, configured like one real-world miner deployment.

``command`` runs the miner inside the pod against the lab's loopback pool (``ctx.pool``), logged in as
``<workload>.<run>`` so the pool counts this run's shares apart. Variants change how it runs: threads,
yielding, a pod CPU quota, a harmless-looking binary name, a web server it hides next to, a noise
thread. ``check`` asks the pool for the run's shares and reads the miner's log (hash rate, huge pages).
"""

from __future__ import annotations

import http.client
import re
import shlex
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from minerlens_lab.miners.build import build_miner, randomx_available
from minerlens_lab.miners.pow import ALGORITHMS
from minerlens_lab.workload import RunContext, Workload

YieldMode = Literal["none", "sched", "sleep"]

MIN_SECONDS_FOR_SHARES = 8.0
"""a run at least this long must have had an accepted share"""

_SPEED = re.compile(r"speed \S+ ([\d.]+) H/s")
_SUMMARY = re.compile(r"summary: hashes (\d+) in ([\d.]+) s")
_MEMORY = re.compile(r"memory: (.+?) pages=(\w+)")
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_WEB_PAGES = {
    "index.html": "<!doctype html><title>shop</title><h1>Welcome</h1><a href='/products.html'>products</a>\n",
    "products.html": "<!doctype html><ul>" + "".join(f"<li>item {i}</li>" for i in range(200)) + "</ul>\n",
    "app.js": "console.log('ready');\n" * 200,
}


@dataclass(frozen=True)
class MinerConfig:
    algo: str
    threads: int | None = None
    """None: ``ctx.threads``"""
    yield_mode: YieldMode = "none"
    yield_every: int | None = None
    duty: float = 0.5
    noise: float = 0.0
    """share of all the process's syscalls made by the noise thread (0: none)"""
    disguise: str | None = None
    """run a copy of the binary under this name"""
    hidden_web: bool = False
    """start a web server in the pod, with the miner as an extra background process"""
    randomx_mode: Literal["light", "fast"] = "light"
    keepalive_s: int = 10
    print_time_s: int = 5


class MinerWorkload(Workload):
    label = "miner"

    def __init__(
        self,
        name: str,
        family: str,
        config: MinerConfig,
        *,
        variant: str,
        description: str,
        cpu_limit: float | None = None,
        min_seconds_for_shares: float = MIN_SECONDS_FOR_SHARES,
    ) -> None:
        self.name = name
        self.family = family
        self.variant = variant
        self.description = description
        self.config = config
        self.cpu_limit = cpu_limit
        self.min_seconds_for_shares = min_seconds_for_shares
        requires = ["cc"]
        if config.algo == "rx/0":
            requires.append("python:randomx")  # the pool verifies RandomX shares with it
        if config.hidden_web:
            requires.append("python3")
        self.requires = tuple(requires)

    # ---- paths and names ---------------------------------------------------------------------------

    def login(self, ctx: RunContext) -> str:
        return f"{self.name}.{_SAFE.sub('_', ctx.workdir.name)}"

    def log_path(self, ctx: RunContext) -> Path:
        return ctx.workdir / "miner.log"

    def _binary(self, ctx: RunContext) -> Path:
        return Path(ctx.facts["miner_binary"]) if "miner_binary" in ctx.facts else build_miner(ctx.cache_dir)

    # ---- Workload ----------------------------------------------------------------------------------

    def prepare(self, ctx: RunContext) -> None:
        if self.config.algo not in ALGORITHMS:
            msg = f"{self.name}: unknown algorithm {self.config.algo!r}"
            raise ValueError(msg)
        if self.config.algo == "rx/0" and not randomx_available():
            msg = "RandomX needs librandomx (apt-get install librandomx-dev)"
            raise RuntimeError(msg)
        binary = build_miner(ctx.cache_dir)
        if self.config.disguise:
            disguised = ctx.workdir / ".cache" / self.config.disguise
            disguised.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(binary, disguised)
            binary = disguised
        ctx.facts["miner_binary"] = str(binary)
        ctx.facts["pool_login"] = self.login(ctx)
        if self.config.hidden_web:
            www = ctx.workdir / "www"
            www.mkdir(exist_ok=True)
            for page, text in _WEB_PAGES.items():
                (www / page).write_text(text)
            ctx.facts["http_port"] = ctx.free_port()

    def miner_argv(self, ctx: RunContext) -> list[str]:
        if ctx.pool is None:
            msg = f"{self.name}: no stratum pool in the run context (ctx.pool)"
            raise RuntimeError(msg)
        c = self.config
        host, port = ctx.pool
        argv = [
            str(self._binary(ctx)),
            "-a",
            c.algo,
            "-o",
            f"{host}:{port}",
            "-u",
            self.login(ctx),
            "-p",
            "x",
            "-t",
            str(c.threads or ctx.threads),
            "--keepalive",
            str(c.keepalive_s),
            "--print-time",
            str(c.print_time_s),
            "--log-file",
            str(self.log_path(ctx)),
        ]
        if c.yield_mode != "none":
            argv += ["--yield", c.yield_mode]
        if c.yield_every:
            argv += ["--yield-every", str(c.yield_every)]
        if c.yield_mode == "sleep":
            argv += ["--duty", str(c.duty)]
        if c.noise:
            argv += ["--noise", str(c.noise)]
        if c.algo == "rx/0":
            argv += ["--randomx-mode", c.randomx_mode]
        return argv

    def command(self, ctx: RunContext) -> list[str]:
        miner = self.miner_argv(ctx)
        if not self.config.hidden_web:
            return miner
        # the system's python, as a container image has it (not a version-manager shim)
        python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or sys.executable
        port = int(ctx.facts["http_port"])
        script = ctx.workdir / "entrypoint.sh"
        script.write_text(
            "#!/bin/sh\n"
            "# the web pod's entrypoint, with what an intruder appended: a miner in the background\n"
            f"{shlex.join(miner)} >/dev/null 2>&1 &\n"
            f"exec {shlex.quote(python)} -m http.server {port} --bind 127.0.0.1"
            f" --directory {shlex.quote(str(ctx.workdir / 'www'))}\n"
        )
        return ["/bin/sh", str(script)]

    def drive(self, ctx: RunContext, stop: threading.Event) -> None:
        if not self.config.hidden_web:
            return
        served, errors = _http_load(int(ctx.facts["http_port"]), stop)
        ctx.facts["http_requests"] = served
        ctx.facts["http_errors"] = errors

    def check(self, ctx: RunContext) -> None:
        from minerlens_lab.pool import query_stats  # the pool imports this package (for pow)

        if ctx.pool is None:
            return
        stats = query_stats(ctx.pool, self.login(ctx))
        ctx.facts["shares_accepted"] = stats["accepted"]
        ctx.facts["shares_rejected"] = stats["rejected"]
        ctx.facts["pool_connections"] = stats["connections"]
        ctx.facts["pool_hashrate"] = stats["hashrate"]
        ctx.facts.update(parse_miner_log(self.log_path(ctx)))
        if stats["accepted"] == 0 and ctx.seconds >= self.min_seconds_for_shares:
            msg = f"{self.name}: no accepted share in {ctx.seconds:.0f} s (pool: {stats})"
            raise RuntimeError(msg)


def parse_miner_log(path: Path) -> dict[str, Any]:
    """Facts from a miner log: last reported hash rate, hashes, and the page kind of each large allocation."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    facts: dict[str, Any] = {}
    speeds = _SPEED.findall(text)
    if speeds:
        facts["hashrate"] = float(speeds[-1])
    summary = _SUMMARY.search(text)
    if summary:
        facts["hashes"] = int(summary.group(1))
    pages: dict[str, str] = {}
    for what, kind in _MEMORY.findall(text):
        pages[what] = kind
    if pages:
        facts["huge_pages"] = pages
        facts["hugetlb"] = any(k == "hugetlb" for k in pages.values())
    return facts


def _http_load(port: int, stop: threading.Event, rate_hz: float = 20.0) -> tuple[int, int]:
    """GET the hidden-miner pod's pages at about ``rate_hz`` until ``stop``; returns (served, errors)."""
    pages = list(_WEB_PAGES)
    served = errors = 0
    deadline = time.monotonic() + 15
    while not stop.is_set():  # wait for the server
        probe = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            probe.connect()
            break
        except OSError:
            if time.monotonic() > deadline:
                return 0, 1
            stop.wait(0.05)
        finally:
            probe.close()
    n = 0
    while not stop.wait(1.0 / rate_hz):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/" + pages[n % len(pages)])
            conn.getresponse().read()
            served += 1
        except (OSError, http.client.HTTPException):
            errors += 1
        finally:
            conn.close()
        n += 1
    return served, errors
