"""Runtimes whose threads yield a lot: the look-alikes of a miner that calls ``sched_yield`` once per
hash (XMRig's default), or whose runtime naps and wakes on futexes.

A JVM work pool whose threads ``Thread.yield()`` between small tasks, a Go program passing messages
around a ring of goroutines, and a DPDK-like poll-mode packet processor (non-blocking ``recv`` in a tight
loop, ``sched_yield`` when idle) fed with UDP packets from outside the pod.
"""

from __future__ import annotations

import socket
import threading

from minerlens_lab.benign.common import (
    LOOKALIKE_REPEATS,
    last_progress,
    per_repeat,
    port,
    progress_lines,
    repeat_threads,
    setting,
)
from minerlens_lab.benign.native import c_binary, go_binary, java_classpath
from minerlens_lab.drive import Clock, ticks
from minerlens_lab.workload import CI_SUBSET, RunContext, Workload


class _Yielding(Workload):
    family = "yield-heavy-runtimes"
    label = "benign"
    repeats = LOOKALIKE_REPEATS
    imitates = "a yielding miner: busy threads calling sched_yield (or napping) between units of work"

    def log(self, ctx: RunContext) -> str:
        return str(ctx.workdir / "progress.log")


class JvmYieldWorkers(_Yielding):
    name = "jvm-yield-workers"
    variant = "openjdk17-yield-between-tasks"
    description = (
        "a Java 17 work pool: 2 (1, 4) threads take SHA-256 tasks from a shared lock-free queue and"
        " Thread.yield() after each; task size varies by repeat"
    )
    requires = ("java", "javac")

    def prepare(self, ctx: RunContext) -> None:
        java_classpath(ctx.cache_dir)

    def command(self, ctx: RunContext) -> list[str]:
        rounds = setting(ctx, "rounds_per_task", (512, 128, 2048))
        return [
            "java",
            "-Xmx128m",
            "-cp",
            str(java_classpath(ctx.cache_dir)),
            "LabJava",
            "yield",
            str(repeat_threads(ctx)),
            self.log(ctx),
            str(rounds),
        ]

    def check(self, ctx: RunContext) -> None:
        last_progress(ctx, ctx.workdir / "progress.log", "tasks")


class GoChannels(_Yielding):
    name = "go-channel-ring"
    variant = "ring-of-goroutines"
    description = (
        "a Go program: a ring of 64 (16, 256) goroutines passing messages over channels with a little"
        " hashing per hop, plus a 1 ms ticker, on GOMAXPROCS=cores (1, 2x)"
    )
    requires = ("go",)

    def prepare(self, ctx: RunContext) -> None:
        go_binary(ctx.cache_dir)

    def command(self, ctx: RunContext) -> list[str]:
        goroutines, work = per_repeat(ctx, ((64, 16), (16, 64), (256, 4)))
        ctx.facts["goroutines"], ctx.facts["hashes_per_hop"] = goroutines, work
        return [
            "env",
            f"GOMAXPROCS={repeat_threads(ctx)}",
            str(go_binary(ctx.cache_dir)),
            "chan",
            "-goroutines",
            str(goroutines),
            "-work",
            str(work),
            "-log",
            self.log(ctx),
        ]

    def check(self, ctx: RunContext) -> None:
        last_progress(ctx, ctx.workdir / "progress.log", "hops")


class BusyPollUdp(_Yielding):
    name = "busy-poll-udp"
    variant = "poll-mode-sched-yield"
    subsets = (CI_SUBSET,)
    description = (
        "a DPDK-like poll-mode packet processor (C): threads poll non-blocking UDP sockets in a tight loop,"
        " spin 50/200/100 us then sched_yield when idle; fed ~2-8k packets/s from outside the pod"
    )
    requires = ("gcc",)

    def prepare(self, ctx: RunContext) -> None:
        c_binary(ctx.cache_dir, "busypoll")

    def command(self, ctx: RunContext) -> list[str]:
        spin = setting(ctx, "spin_us", (50, 200, 100))
        return [
            str(c_binary(ctx.cache_dir, "busypoll")),
            str(port(ctx)),
            str(repeat_threads(ctx)),
            str(spin),
            self.log(ctx),
        ]

    def drive(self, ctx: RunContext, stop: threading.Event) -> None:
        """Packets from a few flows (source ports), in bursts every 10 ms, like a trickle of traffic."""
        clock = Clock(ctx.seconds)
        burst = per_repeat(ctx, (40, 20, 80))
        sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
        sent = 0
        try:
            for tick in ticks(stop, clock, 0.01):
                for i in range(burst):
                    s = sockets[i % len(sockets)]
                    payload = bytes([(tick + i) & 0xFF]) * (64 + (i * 37) % 1200)
                    s.sendto(payload, ("127.0.0.1", port(ctx)))
                    sent += 1
        finally:
            for s in sockets:
                s.close()
        ctx.facts["packets_sent"] = sent

    def check(self, ctx: RunContext) -> None:
        lines = [line for line in progress_lines(ctx.workdir / "progress.log") if len(line) == 4]
        if not lines:
            msg = "the poller reported nothing"
            raise RuntimeError(msg)
        _, packets, nbytes, polls = lines[-1]
        ctx.facts.update(packets_processed=int(packets), bytes_processed=int(nbytes), polls=int(polls))
        if packets <= 0:
            msg = f"the poller processed no packet ({int(polls)} polls, {ctx.facts.get('packets_sent')} sent)"
            raise RuntimeError(msg)
