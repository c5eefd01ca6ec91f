"""The real XMRig 6.16.0 as a lab workload, sealed in a loopback-only network namespace with its own pool.

Per run (``prepare``): the pinned binary is fetched/verified (``fetch``), a fresh network namespace
with nothing but ``lo`` is made and checked (``netns``), the huge page counts are recorded
(``hugepages``), and the lab pool starts as a separate process inside the namespace, on its
loopback (``poolproc``). ``command`` runs XMRig in the pod through ``nsenter --net=<ns>``: the pod's
processes can reach nothing but that pool. ``check`` reads XMRig's log and asks the pool for the
run's shares; ``cleanup`` (also after a failure or Ctrl-C) stops the pool, removes the namespace and
restores ``vm.nr_hugepages``.

The pod's processes run without ``CAP_SYS_MODULE`` and ``CAP_SYS_RAWIO`` (``setpriv``; containers lack them
too): XMRig as root tries to load the ``msr`` module through a shell even with MSR writes disabled.
XMRig is configured by a generated ``config.json`` in the run's directory (``xmrig -c``): the pool
(``127.0.0.1:3333``, keepalive), ``rx/0``, the threads, ``log-file``, ``print-time``, ``colors: false``,
``donate-level: 1`` (its minimum: the donation connection cannot leave the namespace), ``randomx``
``wrmsr``/``rdmsr`` off (never touch the host's MSRs), ``autosave`` off; everything else is XMRig's
default (``"yield": true``, huge pages on, RandomX ``auto``: fast mode when memory allows). The no-yield
variant adds ``--cpu-no-yield`` on the command line.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from minerlens_lab.miners.build import build_program
from minerlens_lab.miners.disguise import disguised_copy
from minerlens_lab.miners.webpod import http_load, web_entrypoint, write_web_pages
from minerlens_lab.workload import RunContext, Workload
from minerlens_lab.xmrig.fetch import IMPLEMENTATION, fetch_xmrig, verify
from minerlens_lab.xmrig.hugepages import HugePagesGuard, nr_hugepages
from minerlens_lab.xmrig.logparse import parse_xmrig_log
from minerlens_lab.xmrig.netns import LoopbackNetns
from minerlens_lab.xmrig.poolproc import PoolProcess

COMPANION_SRC = Path(__file__).parent / "c" / "noise_companion.c"
DROPPED_CAPS = ("sys_module", "sys_rawio")
"""dropped from the pod's processes, as a container runtime does: XMRig run as root would otherwise try to
load the msr kernel module (``sh -c "/sbin/modprobe msr allow_writes=on"``, even with
``--randomx-wrmsr=-1`` or ``"wrmsr": false``) and touch the host's MSRs"""
COMPANION_NAME = "ml-noise"
TRACEPOINT_IDS = (
    Path("/sys/kernel/tracing/events/raw_syscalls/sys_enter/id"),
    Path("/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id"),
)
SHARE_INTERVAL_S = 30.0
START_DIFF_FACTOR = 1 / 3
"""the run's first difficulty is this times the variant's expected rate x the share interval: the first
shares come every ~10 s on a quiet machine (a real pool starts a new connection low, too), vardiff then
raises it towards the target; a 60-90-s capture (with a dataset build in it) still gets shares"""
EXPECTED_HS_PER_THREAD = {"fast": 250.0, "light": 25.0}
"""rough XMRig rx/0 hash rates per thread on this lab's 2-core machine (quiet), for the start difficulty"""

MIN_SECONDS_FOR_PROOF = 30.0
"""a run at least this long must show a hash-rate line in XMRig's log and an accepted share"""

RandomxMode = Literal["auto", "fast", "light"]


@dataclass(frozen=True)
class XmrigConfig:
    threads: tuple[int, ...] = (2,)
    """worker threads per repeat (run k uses ``threads[(k-1) % len]``)"""
    cpu_yield: bool = True
    """XMRig's default ``yield``: a ``sched_yield`` after every hash; False: ``--cpu-no-yield``"""
    randomx_mode: RandomxMode = "auto"
    disguise: str | None = None
    """run a copy of the binary under this name"""
    hidden_web: bool = False
    """a web pod (python http.server under load) whose entrypoint also starts XMRig in the background"""
    noise: float = 0.0
    """share of the pod's syscalls made by the noise companion process (0: none)"""
    print_time_s: tuple[int, ...] = (10, 20, 15)
    """``--print-time`` per repeat"""
    huge_pages: bool = True
    """XMRig's default; False: ``"huge-pages": false``, as in a pod that may not reserve them (no root)"""

    def threads_for(self, repeat: int) -> int:
        return self.threads[(max(1, repeat) - 1) % len(self.threads)]

    def print_time_for(self, repeat: int) -> int:
        return self.print_time_s[(max(1, repeat) - 1) % len(self.print_time_s)]


@dataclass
class _Run:
    netns: LoopbackNetns | None = None
    pool: PoolProcess | None = None
    hugepages: HugePagesGuard | None = None
    binary: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class XmrigWorkload(Workload):
    label = "miner"
    implementation = IMPLEMENTATION
    repeats = 3

    def __init__(
        self,
        name: str,
        config: XmrigConfig,
        *,
        variant: str,
        description: str,
        seconds: float,
        cpu_limit: float | None = None,
        family: str = "miner-xmrig",
        subsets: tuple[str, ...] = (),
        share_interval_s: float = SHARE_INTERVAL_S,
    ) -> None:
        self.name = name
        self.family = family
        self.variant = variant
        self.description = description
        self.config = config
        self.cpu_limit = cpu_limit
        self.seconds = seconds
        self.subsets = subsets
        self.share_interval_s = share_interval_s
        requires = ["npm", "ip", "nsenter", "setpriv", "python:randomx"]
        if config.noise:
            requires.append("cc")
        if config.hidden_web:
            requires.append("python3")
        self.requires = tuple(requires)
        self._runs: dict[Path, _Run] = {}

    # ---- names ---------------------------------------------------------------------------------------

    def login(self, ctx: RunContext) -> str:
        return f"{self.name}.{ctx.workdir.name}"

    def log_path(self, ctx: RunContext) -> Path:
        return ctx.workdir / "xmrig.log"

    def comm(self) -> str:
        """The miner's ``/proc/<pid>/comm`` (15 characters at most)."""
        return (self.config.disguise or "xmrig")[:15]

    def start_difficulty(self, repeat: int) -> int:
        mode = "light" if self.config.randomx_mode == "light" else "fast"
        cores = min(float(self.config.threads_for(repeat)), self.cpu_limit or 2.0)
        return max(1, round(EXPECTED_HS_PER_THREAD[mode] * cores * self.share_interval_s * START_DIFF_FACTOR))

    # ---- Workload ----------------------------------------------------------------------------------

    def fetch(self, cache_dir: Path) -> None:
        fetch_xmrig(cache_dir)

    def prepare(self, ctx: RunContext) -> None:
        run = self._runs[ctx.workdir] = _Run()
        binary = fetch_xmrig(ctx.cache_dir)
        if self.config.disguise:
            binary = disguised_copy(binary, ctx.workdir, self.config.disguise)
        run.binary = verify(binary)
        if self.config.noise:
            if not any(p.exists() for p in TRACEPOINT_IDS):
                msg = "the noise companion counts syscalls with the raw_syscalls:sys_enter tracepoint: mount tracefs"
                raise RuntimeError(msg)
            run.extra["companion"] = build_program(ctx.cache_dir, COMPANION_NAME, [COMPANION_SRC])
        if self.config.hidden_web:
            write_web_pages(ctx.workdir)
            run.extra["http_port"] = 8080
        run.hugepages = HugePagesGuard(ctx.cache_dir / "xmrig" / "hugepages-journal.json")
        ctx.facts["nr_hugepages_before"] = run.hugepages.start().total
        run.netns = LoopbackNetns.create()
        ctx.facts["netns"] = run.netns.name
        run.pool = PoolProcess(
            run.netns,
            ctx.workdir,
            ctx.cache_dir,
            share_interval_s=self.share_interval_s,
            start_diff={"rx/0": self.start_difficulty(ctx.repeat)},
        )
        run.pool.start()
        ctx.facts.update(
            pool_login=self.login(ctx),
            pool_start_difficulty=self.start_difficulty(ctx.repeat),
            pool_share_interval_s=self.share_interval_s,
            threads_configured=self.config.threads_for(ctx.repeat),
            cpu_yield=self.config.cpu_yield,
            randomx_mode_configured=self.config.randomx_mode,
            print_time_s=self.config.print_time_for(ctx.repeat),
            miner_comms=[self.comm()],
            capabilities_dropped=list(DROPPED_CAPS),
        )
        if self.config.noise:
            ctx.facts["noise_comms"] = [COMPANION_NAME]
            ctx.facts["noise_share_configured"] = self.config.noise
        if self.config.hidden_web:
            ctx.facts["web_comms"] = ["python3"]

    def _ready(self, ctx: RunContext) -> tuple[LoopbackNetns, PoolProcess, Path, dict[str, Any]]:
        """This run's namespace, pool, binary and extras (``prepare`` must have completed)."""
        run = self._runs.get(ctx.workdir)
        if run is None or run.netns is None or run.pool is None or run.binary is None:
            msg = f"{self.name}: prepare() did not complete for this run"
            raise RuntimeError(msg)
        return run.netns, run.pool, run.binary, run.extra

    def config_path(self, ctx: RunContext) -> Path:
        return ctx.workdir / "config.json"

    def xmrig_config(self, ctx: RunContext) -> dict[str, Any]:
        """XMRig's ``config.json`` for this run: its own defaults (``"yield": true``, huge pages, RandomX
        ``auto``) with the lab's pool, threads, log file, print time, minimum donation, and no MSR changes.
        (Started from the command line alone, XMRig 6.16 does not yield: measured, 13 ``sched_yield`` in
        20 s against ~1 450 with this file; deployments use both.)"""
        _, pool, _, _ = self._ready(ctx)
        host, port = pool.address
        c = self.config
        return {
            "autosave": False,
            "background": False,
            "colors": False,
            "donate-level": 1,
            "log-file": str(self.log_path(ctx)),
            "print-time": c.print_time_for(ctx.repeat),
            "cpu": {"enabled": True, "huge-pages": c.huge_pages, "yield": True, "rx": [-1] * c.threads_for(ctx.repeat)},
            "randomx": {"mode": c.randomx_mode, "1gb-pages": False, "wrmsr": False, "rdmsr": False},
            "pools": [
                {"url": f"{host}:{port}", "user": self.login(ctx), "pass": "x", "algo": "rx/0", "keepalive": True}
            ],
        }

    def xmrig_argv(self, ctx: RunContext) -> list[str]:
        """``xmrig -c config.json`` (written here), plus ``--cpu-no-yield`` for the no-yield variant (the
        command line overrides the file)."""
        _, _, binary, _ = self._ready(ctx)
        path = self.config_path(ctx)
        config = self.xmrig_config(ctx)
        path.write_text(json.dumps(config, indent=2) + "\n")
        ctx.facts["xmrig_config"] = config
        argv = [str(binary), "-c", str(path)]
        if not self.config.cpu_yield:
            argv.append("--cpu-no-yield")
        if not self.config.huge_pages:  # the file's "huge-pages": false alone still got 100 % (measured)
            argv.append("--no-huge-pages")
        return argv

    def command(self, ctx: RunContext) -> list[str]:
        netns, _, _, extra = self._ready(ctx)
        miner = self.xmrig_argv(ctx)
        if self.config.noise:
            miner = [str(extra["companion"]), "--share", str(self.config.noise), "--", *miner]
        pod = [*netns.exec_prefix(), "setpriv", "--bounding-set", ",".join(f"-{c}" for c in DROPPED_CAPS), "--"]
        if not self.config.hidden_web:
            return [*pod, *miner]
        script = web_entrypoint(ctx.workdir, miner, int(extra["http_port"]))
        return [*pod, "/bin/sh", str(script)]

    def drive(self, ctx: RunContext, stop: threading.Event) -> None:
        """The web pod's clients, from inside the namespace (nothing outside can reach it)."""
        if not self.config.hidden_web:
            return
        netns, _, _, extra = self._ready(ctx)
        port = int(extra["http_port"])
        served, errors = netns.run_in(http_load, port, stop, 30.0, timeout_s=ctx.seconds + 60)
        ctx.facts["http_requests"] = served
        ctx.facts["http_errors"] = errors

    def check(self, ctx: RunContext) -> None:
        _, pool, _, _ = self._ready(ctx)
        ctx.facts["nr_hugepages_during"] = nr_hugepages()
        stats = pool.stats(self.login(ctx))
        ctx.facts.update(
            shares_accepted=stats["accepted"],
            shares_rejected=stats["rejected"],
            pool_connections=stats["connections"],
            pool_hashrate=stats["hashrate"],
            pool_difficulty=stats["difficulty"],
            pool_retargets=stats["retargets"],
            pool_jobs=stats["jobs"],
            pool_keepalives=stats["keepalives"],
            mean_share_interval_s=stats["mean_share_interval"],
            pool_difficulties=stats["difficulties"],
            pool_share_times=stats["share_times"][-64:],
        )
        facts = parse_xmrig_log(self.log_path(ctx))
        ctx.facts.update(facts)
        if ctx.seconds < MIN_SECONDS_FOR_PROOF:
            return  # a short smoke run (CI): too short for a hash-rate line or a share to be required
        if not facts.get("hashing") or "hashrate" not in facts:
            mode = facts.get("randomx_mode", "?")
            msg = (
                f"{self.name}: XMRig's log shows no hash rate after {ctx.seconds:.0f} s "
                f"(randomx {mode}, dataset ready at {facts.get('dataset_ready_s', 'never')} s; a busy machine?)"
            )
            raise RuntimeError(msg)
        if not self.config.huge_pages and (facts.get("huge_pages_threads_pct") or facts.get("huge_pages_dataset_pct")):
            msg = f"{self.name}: XMRig used huge pages although this variant disables them ({facts})"
            raise RuntimeError(msg)
        if stats["accepted"] == 0:
            msg = f"{self.name}: no share accepted by the pool in {ctx.seconds:.0f} s (pool: {stats})"
            raise RuntimeError(msg)

    def cleanup(self, ctx: RunContext) -> None:
        run = self._runs.pop(ctx.workdir, None)
        if run is None:
            return
        errors: list[str] = []
        if run.pool is not None:
            run.pool.stop()
        if run.netns is not None:
            run.netns.delete()
        if run.hugepages is not None:
            try:
                run.hugepages.restore()
                ctx.facts["nr_hugepages_after"] = nr_hugepages()
            except Exception as exc:  # noqa: BLE001 - reported below, after the rest is cleaned
                errors.append(str(exc))
        if errors:
            raise RuntimeError("; ".join(errors))
