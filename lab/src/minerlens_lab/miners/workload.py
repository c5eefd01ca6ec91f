"""A miner workload: the lab's C miner, configured like one real-world miner deployment.

``command`` runs the miner inside the pod against the lab's loopback pool (``ctx.pool``; the chatty-pool
variant starts a pool of its own), logged in as ``<workload>.<run>`` so the pool counts this run's
shares apart, with ``start=N`` in its password: half the difficulty a miner of this speed
converges to at the pool's 30-s share interval (vardiff corrects the estimate and ramps it up).
Variants change how it runs: profile (XMRig or cpuminer structure), threads, yielding, a pod CPU
quota, a harmless-looking binary name, a web server it hides next to, a noise thread. ``check`` asks
the pool for the run's shares and reads the miner's log (hash rate, huge pages).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from minerlens_lab.miners.build import build_miner, randomx_available
from minerlens_lab.miners.disguise import disguised_copy
from minerlens_lab.miners.logparse import parse_miner_log
from minerlens_lab.miners.pow import ALGORITHMS
from minerlens_lab.miners.webpod import WEB_PAGES, http_load, web_entrypoint, write_web_pages
from minerlens_lab.workload import RunContext, Workload

if TYPE_CHECKING:
    from minerlens_lab.pool import PoolThread

__all__ = ["WEB_PAGES", "MinerConfig", "MinerWorkload", "http_load", "parse_miner_log"]

YieldMode = Literal["none", "sched", "sleep"]
Profile = Literal["xmrig", "cpuminer"]
PoolProfile = Literal["realistic", "chatty"]

IMPLEMENTATION = "minerlens-c"
MIN_SECONDS_FOR_SHARES = 8.0
"""a run at least this long must have had an accepted share"""
SHARE_INTERVAL_S = 30.0
"""the realistic pool's share interval (``minerlens_lab.pool.REALISTIC``)"""
START_DIFF_FACTOR: dict[Profile, float] = {"xmrig": 1 / 2, "cpuminer": 1.0}
"""the start difficulty as a share of the converged one, by the structure the run copies. XMRig-like runs start
at half: their first shares come every ~15 s on a quiet machine and vardiff raises it towards one share per
30 s (a real pool starts a new XMRig connection low, too). cpuminer-like runs start at it: cpuminer is
pointed at a pool port (or given ``d=``) matching its hash rate class, and a miner that makes ~1-2 syscalls/s
besides stratum would otherwise spend its first minute mostly talking to the pool (measured: 7.2 % of
``miner-scrypt-2t``'s syscalls were stratum traffic at half; docs/dataset.md)"""
EXPECTED_HS_PER_THREAD = {"rx/0": 25.0, "rx/0-fast": 190.0, "cn-like": 60.0, "sha256d": 2.1e6, "scrypt": 3.0e3}
"""hash rates of one thread of this lab's 2-core machine (quiet; measured 7 Dec 2026), for the start difficulty;
``rx/0-fast``: RandomX from the full dataset (``--randomx-mode fast``; 375 H/s on 2 threads, measured)"""
FAST_DATASET_SECONDS = 40.0
"""building the 2080 MiB RandomX dataset before the first hash (measured: 30-46 s on 2 busy cores): fast-mode
runs capture this much longer, so that they still hash for the usual 60 s"""
CPUMINER_ALGOS = ("scrypt", "sha256d")
"""algorithms whose default structure is cpuminer's (the C miner's ``--profile`` default)"""
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class MinerConfig:
    algo: str
    threads: int | tuple[int, ...] | None = None
    """an int, one per repeat (run k uses ``threads[(k-1) % len]``), or None: ``ctx.threads``"""
    profile: Profile | None = None
    """the real miner whose structure it copies (None: the algorithm's, ``xmrig`` or ``cpuminer``)"""
    yield_mode: YieldMode | None = None
    """None: the profile's default (XMRig yields after every hash, cpuminer never)"""
    yield_every: int | None = None
    duty: float = 0.5
    noise: float = 0.0
    """share of all the process's syscalls made by the noise thread (0: none)"""
    disguise: str | None = None
    """run a copy of the binary under this name"""
    hidden_web: bool = False
    """start a web server in the pod, with the miner as an extra background process"""
    randomx_mode: Literal["light", "fast"] = "light"
    keepalive_s: int | None = None
    """None: the profile's default (XMRig 60 s, cpuminer never)"""
    print_time_s: tuple[int, ...] = (10, 30)
    """XMRig profile: ``--print-time`` per repeat"""
    pool_profile: PoolProfile = "realistic"
    """``chatty``: a pool of its own asking for a share a second (the lab's old pace, kept as a variant)"""

    def threads_for(self, repeat: int, default: int) -> int:
        if self.threads is None:
            return default
        if isinstance(self.threads, int):
            return self.threads
        return self.threads[(max(1, repeat) - 1) % len(self.threads)]


class MinerWorkload(Workload):
    label = "miner"
    implementation = IMPLEMENTATION
    repeats = 2
    seconds = 60.0

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
        subsets: tuple[str, ...] = (),
        share_interval_s: float = SHARE_INTERVAL_S,
    ) -> None:
        self.name = name
        self.family = family
        self.variant = variant
        self.description = description
        self.config = config
        self.cpu_limit = cpu_limit
        self.min_seconds_for_shares = min_seconds_for_shares
        if config.algo == "rx/0" and config.randomx_mode == "fast":
            self.seconds = self.seconds + FAST_DATASET_SECONDS
            self.min_seconds_for_shares = min_seconds_for_shares + FAST_DATASET_SECONDS
        self.subsets = subsets
        self.share_interval_s = share_interval_s
        """the share interval of the pool it mines on, for its start difficulty (tests use shorter ones)"""
        requires = ["cc"]
        if config.algo == "rx/0":
            requires.append("python:randomx")  # the pool verifies RandomX shares with it
        if config.hidden_web:
            requires.append("python3")
        self.requires = tuple(requires)
        self._own_pools: dict[Path, PoolThread] = {}

    # ---- paths and names ---------------------------------------------------------------------------

    def login(self, ctx: RunContext) -> str:
        return f"{self.name}.{_SAFE.sub('_', ctx.workdir.name)}"

    def log_path(self, ctx: RunContext) -> Path:
        return ctx.workdir / "miner.log"

    def _binary(self, ctx: RunContext) -> Path:
        return Path(ctx.facts["miner_binary"]) if "miner_binary" in ctx.facts else build_miner(ctx.cache_dir)

    def threads(self, ctx: RunContext) -> int:
        return self.config.threads_for(ctx.repeat, ctx.threads)

    def start_difficulty(self, ctx: RunContext) -> int:
        """What vardiff would converge to for this variant on a quiet machine, times ``START_DIFF_FACTOR``."""
        c = self.config
        cores = float(self.threads(ctx))
        if self.cpu_limit is not None:
            cores = min(cores, self.cpu_limit)
        if c.yield_mode == "sleep":
            cores *= c.duty
        key = f"{c.algo}-fast" if c.algo == "rx/0" and c.randomx_mode == "fast" else c.algo
        rate = EXPECTED_HS_PER_THREAD.get(key, 1.0) * cores
        interval = 1.0 if c.pool_profile == "chatty" else self.share_interval_s
        return max(1, round(rate * interval * START_DIFF_FACTOR[self.profile]))

    @property
    def profile(self) -> Profile:
        """The real miner's structure this entry copies (its configured one, else its algorithm's)."""
        c = self.config
        return c.profile or ("cpuminer" if c.algo in CPUMINER_ALGOS else "xmrig")

    def _pool_address(self, ctx: RunContext) -> tuple[str, int]:
        own = self._own_pools.get(ctx.workdir)
        if own is not None:
            return own.address
        if ctx.pool is None:
            msg = f"{self.name}: no stratum pool in the run context (ctx.pool)"
            raise RuntimeError(msg)
        return ctx.pool

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
            binary = disguised_copy(binary, ctx.workdir, self.config.disguise)
        ctx.facts["miner_binary"] = str(binary)
        ctx.facts["miner_comms"] = [binary.name[:15]]
        ctx.facts["pool_login"] = self.login(ctx)
        ctx.facts["pool_profile"] = self.config.pool_profile
        ctx.facts["pool_start_difficulty"] = self.start_difficulty(ctx)
        ctx.facts["threads_configured"] = self.threads(ctx)
        if self.config.pool_profile != "realistic":
            from minerlens_lab.pool import PoolThread, profile  # the pool imports this package (for pow)

            pool = PoolThread(ctx.cache_dir, warm_up=(self.config.algo,), config=profile(self.config.pool_profile))
            self._own_pools[ctx.workdir] = pool
            pool.start()
        if self.config.hidden_web:
            write_web_pages(ctx.workdir)
            ctx.facts["http_port"] = ctx.free_port()
            ctx.facts["web_comms"] = ["python3"]

    def miner_argv(self, ctx: RunContext) -> list[str]:
        c = self.config
        host, port = self._pool_address(ctx)
        argv = [
            str(self._binary(ctx)),
            "-a",
            c.algo,
            "-o",
            f"{host}:{port}",
            "-u",
            self.login(ctx),
            "-p",
            f"x;start={self.start_difficulty(ctx)}",
            "-t",
            str(self.threads(ctx)),
            "--log-file",
            str(self.log_path(ctx)),
        ]
        if c.profile is not None:
            argv += ["--profile", c.profile]
        if c.keepalive_s is not None:
            argv += ["--keepalive", str(c.keepalive_s)]
        argv += ["--print-time", str(c.print_time_s[(max(1, ctx.repeat) - 1) % len(c.print_time_s)])]
        if c.yield_mode is not None:
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
        script = web_entrypoint(ctx.workdir, miner, int(ctx.facts["http_port"]))
        return ["/bin/sh", str(script)]

    def drive(self, ctx: RunContext, stop: threading.Event) -> None:
        if not self.config.hidden_web:
            return
        served, errors = http_load(int(ctx.facts["http_port"]), stop)
        ctx.facts["http_requests"] = served
        ctx.facts["http_errors"] = errors

    def check(self, ctx: RunContext) -> None:
        from minerlens_lab.pool import query_stats  # the pool imports this package (for pow)

        stats = query_stats(self._pool_address(ctx), self.login(ctx))
        ctx.facts["shares_accepted"] = stats["accepted"]
        ctx.facts["shares_rejected"] = stats["rejected"]
        ctx.facts["pool_connections"] = stats["connections"]
        ctx.facts["pool_hashrate"] = stats["hashrate"]
        ctx.facts["pool_difficulty"] = stats.get("difficulty")
        ctx.facts["pool_jobs"] = stats.get("jobs")
        ctx.facts["pool_retargets"] = stats.get("retargets")
        ctx.facts["mean_share_interval_s"] = stats.get("mean_share_interval")
        ctx.facts["pool_difficulties"] = stats.get("difficulties")
        ctx.facts["pool_share_times"] = (stats.get("share_times") or [])[-64:]
        ctx.facts.update(parse_miner_log(self.log_path(ctx)))
        if stats["accepted"] == 0 and ctx.seconds >= self.min_seconds_for_shares:
            msg = f"{self.name}: no accepted share in {ctx.seconds:.0f} s (pool: {stats})"
            raise RuntimeError(msg)

    def cleanup(self, ctx: RunContext) -> None:
        pool = self._own_pools.pop(ctx.workdir, None)
        if pool is not None:
            pool.stop()
