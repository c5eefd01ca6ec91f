"""Idle services: a server that only answers health checks, and a cron-like shell loop."""

from __future__ import annotations

import contextlib
import threading
import urllib.request

from minerlens_lab.benign.common import port, read_log, repeat_threads, setting, shell_loop
from minerlens_lab.benign.redis_server import redis_server
from minerlens_lab.benign.resp import redis_command, redis_info
from minerlens_lab.benign.site import nginx_argv, nginx_config
from minerlens_lab.drive import Clock, ticks, wait_tcp
from minerlens_lab.workload import CI_SUBSET, RunContext, Workload


class _Probed(Workload):
    family = "idle"
    label = "benign"
    period_s = 1.0

    def probe(self, ctx: RunContext, tick: int) -> None:
        raise NotImplementedError

    def period(self, ctx: RunContext) -> float:
        """Seconds between probes: 1, 5, 10 by repeat (kubelet's periodSeconds defaults to 10)."""
        return setting(ctx, "probe_period_s", (self.period_s, 5 * self.period_s, 10 * self.period_s))

    def drive(self, ctx: RunContext, stop: threading.Event) -> None:
        clock = Clock(ctx.seconds)
        if not wait_tcp("127.0.0.1", port(ctx), stop):
            return
        ok = failed = 0
        period = self.period(ctx)
        for tick in ticks(stop, clock, period):
            try:
                self.probe(ctx, tick)
                ok += 1
            except (OSError, RuntimeError):
                failed += 1
        ctx.facts["health_checks_ok"], ctx.facts["health_checks_failed"] = ok, failed

    def check(self, ctx: RunContext) -> None:
        if not ctx.facts.get("health_checks_ok"):
            msg = "no health check succeeded"
            raise RuntimeError(msg)


class IdleRedis(_Probed):
    name = "idle-redis"
    variant = "ping-1s"
    description = "redis-server with no clients but a liveness probe (PING every 1/5/10 s by repeat, INFO every 10th)"
    requires = ("redis-server",)

    def command(self, ctx: RunContext) -> list[str]:
        self.period(ctx)
        return redis_server(port(ctx), ctx.workdir, "--save", "", logfile=ctx.workdir / "redis.log")

    def probe(self, ctx: RunContext, tick: int) -> None:
        if redis_command(port(ctx), "PING") != "PONG":
            msg = "redis did not answer PONG"
            raise RuntimeError(msg)
        if tick % 10 == 5:
            with contextlib.suppress(KeyError):
                ctx.facts["uptime_s"] = int(redis_info(port(ctx), "server")["uptime_in_seconds"])


class IdleNginx(_Probed):
    name = "idle-nginx"
    variant = "healthz-1s"
    description = "nginx with no traffic but a liveness probe (GET /healthz every 1/5/10 s by repeat)"
    requires = ("nginx",)

    def prepare(self, ctx: RunContext) -> None:
        nginx_config(ctx.workdir, port(ctx), repeat_threads(ctx))

    def command(self, ctx: RunContext) -> list[str]:
        self.period(ctx)
        return nginx_argv(ctx.workdir, ctx.workdir / "nginx.conf")

    def probe(self, ctx: RunContext, tick: int) -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port(ctx)}/healthz", timeout=2) as resp:
            if resp.status != 200:
                msg = f"/healthz answered {resp.status}"
                raise RuntimeError(msg)


class IdleCron(Workload):
    name = "idle-cron"
    family = "idle"
    label = "benign"
    variant = "sleep-loop"
    subsets = (CI_SUBSET,)
    description = "a cron-like shell loop: every 2 (5, 1) s log a heartbeat, check disk usage, prune old files, sleep"

    def command(self, ctx: RunContext) -> list[str]:
        wd = ctx.workdir
        pause = setting(ctx, "sleep_s", (2, 5, 1))
        return shell_loop(
            f"date -u +%FT%TZ >>{wd}/heartbeat.log; df -P {wd} >/dev/null; du -s {wd} >/dev/null;"
            f" find {wd} -name '*.old' -mmin +60 -delete; sleep {pause}"
        )

    def check(self, ctx: RunContext) -> None:
        beats = len(read_log(ctx.workdir / "heartbeat.log").splitlines())
        ctx.facts["heartbeats"] = beats
        if beats == 0:
            msg = "the loop never ran"
            raise RuntimeError(msg)
