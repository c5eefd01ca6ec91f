"""Key-value caches under a real client load: Redis with redis-benchmark, memcached with memaslap."""

from __future__ import annotations

import contextlib
import csv
import io
import re
import threading

from minerlens_lab.benign.common import port, repeat_threads, setting
from minerlens_lab.benign.redis_server import NO_PERSISTENCE, redis_server
from minerlens_lab.benign.resp import memcached_stats, redis_info
from minerlens_lab.drive import Clock, run_tool, wait_tcp
from minerlens_lab.workload import RunContext, Workload

REDIS_CLIENTS = (50, 10, 200)
MEMCACHED_CONNECTIONS = (32, 8, 128)
_REDIS_TESTS = "set,get,incr,lpush,lpop,hset,mset"


class RedisBenchmark(Workload):
    name = "redis-benchmark"
    family = "kv-cache"
    label = "benign"
    variant = "no-persistence"
    description = "redis-server (no persistence) under redis-benchmark: 50 (10, 200) clients, SET/GET/INCR/LPUSH..."
    requires = ("redis-server", "redis-benchmark")
    server_args: tuple[str, ...] = NO_PERSISTENCE

    def command(self, ctx: RunContext) -> list[str]:
        setting(ctx, "clients", REDIS_CLIENTS)
        log = ctx.workdir / "redis.log"
        return [*redis_server(port(ctx), ctx.workdir, "--protected-mode", "no", logfile=log), *self.server_args]

    def drive(self, ctx: RunContext, stop: threading.Event) -> None:
        clock = Clock(ctx.seconds)
        p = port(ctx)
        if not wait_tcp("127.0.0.1", p, stop):
            return
        rounds, rps = 0, []
        clients = setting(ctx, "clients", REDIS_CLIENTS)
        while not stop.is_set() and clock.left() > 0.5:
            run = run_tool(
                # random keys over 100k, 256-byte values: a cache rather than one hot key
                [
                    "redis-benchmark",
                    "-p",
                    str(p),
                    "-c",
                    str(clients),
                    "-n",
                    "30000",
                    "-d",
                    "256",
                    "-r",
                    "100000",
                    "-t",
                    _REDIS_TESTS,
                    "-q",
                    "--csv",
                ],
                stop,
                timeout_s=clock.left(),
            )
            if run.returncode != 0:
                break
            rounds += 1
            rps += [float(r["rps"]) for r in csv.DictReader(io.StringIO(run.stdout)) if r.get("rps")]
        with contextlib.suppress(OSError, RuntimeError):
            ctx.facts["commands_processed"] = int(redis_info(p)["total_commands_processed"])
        ctx.facts["benchmark_rounds"] = rounds
        if rps:
            ctx.facts["mean_rps"] = round(sum(rps) / len(rps), 1)

    def check(self, ctx: RunContext) -> None:
        if not ctx.facts.get("commands_processed"):
            msg = "redis-server processed no command (the load generator never got through)"
            raise RuntimeError(msg)


class RedisAof(RedisBenchmark):
    name = "redis-benchmark-aof"
    variant = "aof-everysec"
    description = "redis-server with an append-only file fsynced every second, under redis-benchmark"
    server_args = ("--save", "", "--appendonly", "yes", "--appendfsync", "everysec")


class MemcachedMemaslap(Workload):
    name = "memcached-memaslap"
    family = "kv-cache"
    label = "benign"
    variant = "get90-set10"
    description = "memcached (threads by repeat) under memaslap: 32 (8, 128) connections, 90% get / 10% set"
    requires = ("memcached", "memcaslap")

    def command(self, ctx: RunContext) -> list[str]:
        setting(ctx, "connections", MEMCACHED_CONNECTIONS)
        return [
            "memcached",
            "-u",
            "nobody",
            "-l",
            "127.0.0.1",
            "-p",
            str(port(ctx)),
            "-U",
            "0",
            "-t",
            str(repeat_threads(ctx)),
            "-m",
            "256",
            "-c",
            "1024",
        ]

    def drive(self, ctx: RunContext, stop: threading.Event) -> None:
        clock = Clock(ctx.seconds)
        p = port(ctx)
        if not wait_tcp("127.0.0.1", p, stop):
            return
        connections = setting(ctx, "connections", MEMCACHED_CONNECTIONS)
        # memaslap wants more threads than servers
        run = run_tool(
            [
                "memcaslap",
                "-s",
                f"127.0.0.1:{p}",
                "-T",
                str(max(2, ctx.threads)),
                "-c",
                str(connections),
                "-t",
                f"{clock.whole_seconds_left()}s",
            ],
            stop,
        )
        m = re.search(r"Ops:\s*(\d+)\s+TPS:\s*(\d+)", run.stdout)
        if m:
            ctx.facts["client_ops"], ctx.facts["client_tps"] = int(m[1]), int(m[2])
        with contextlib.suppress(OSError):
            st = memcached_stats(p)
            ctx.facts["cmd_get"], ctx.facts["cmd_set"] = int(st["cmd_get"]), int(st["cmd_set"])

    def check(self, ctx: RunContext) -> None:
        if not ctx.facts.get("cmd_get"):
            msg = "memcached served no get (the load generator never got through)"
            raise RuntimeError(msg)
