"""Hashing jobs: CPU-bound programs that hash all day and make few syscalls, in the languages and
runtimes pods are written in (JVM, Node.js, Python, Go, OpenSSL's C). The closest benign look-alikes of
a miner's hashing threads; none of them talks to a pool.
"""

from __future__ import annotations

import re

from minerlens_lab.benign.common import (
    LOOKALIKE_REPEATS,
    last_progress,
    per_repeat,
    python_module,
    read_log,
    repeat_threads,
    setting,
    whole_seconds,
    with_output,
)
from minerlens_lab.benign.native import go_binary, java_classpath, node_script
from minerlens_lab.workload import CI_SUBSET, RunContext, Workload


class _HashingJob(Workload):
    family = "hashing-jobs"
    label = "benign"
    repeats = LOOKALIKE_REPEATS
    imitates = "a no-yield miner's hashing threads: all cores busy, almost no syscalls"

    def log(self, ctx: RunContext) -> str:
        return str(ctx.workdir / "progress.log")

    def check(self, ctx: RunContext) -> None:
        last_progress(ctx, ctx.workdir / "progress.log", "hashes")


class JvmSha256d(_HashingJob):
    name = "jvm-sha256d"
    variant = "openjdk17-2-threads"
    description = "a Java 17 program hashing (double SHA-256 of a header, moving nonce) in 2 threads (1, 4 on repeats)"
    requires = ("java", "javac")

    def prepare(self, ctx: RunContext) -> None:
        java_classpath(ctx.cache_dir)

    def command(self, ctx: RunContext) -> list[str]:
        heap = per_repeat(ctx, ("-Xmx256m", "-Xmx64m", "-Xmx512m"))
        gc = per_repeat(ctx, ("-XX:+UseG1GC", "-XX:+UseSerialGC", "-XX:+UseParallelGC"))
        ctx.facts["jvm_flags"] = [heap, gc]
        return [
            "java",
            heap,
            gc,
            "-cp",
            str(java_classpath(ctx.cache_dir)),
            "LabJava",
            "hash",
            str(repeat_threads(ctx)),
            self.log(ctx),
        ]


class NodeSha256(_HashingJob):
    name = "node-sha256"
    variant = "node20-worker-threads"
    description = "a Node.js program hashing (double SHA-256, node:crypto) in worker_threads, one per core (1, 4...)"
    requires = ("node",)

    def command(self, ctx: RunContext) -> list[str]:
        algo = setting(ctx, "algorithm", ("sha256", "sha256", "sha512"))
        return ["node", str(node_script("hashloop.js")), str(repeat_threads(ctx)), self.log(ctx), algo]


class PythonHashlib(_HashingJob):
    name = "python-hashlib"
    variant = "threads-bulk-and-header"
    description = (
        "Python hashlib in threads: 64 KiB-block checksums (GIL released), or double hashes of 80-byte headers"
        " (GIL held), by repeat"
    )

    def command(self, ctx: RunContext) -> list[str]:
        mode, algo = per_repeat(ctx, (("bulk", "sha256"), ("header", "sha256"), ("bulk", "blake2b")))
        ctx.facts["mode"], ctx.facts["algorithm"] = mode, algo
        return python_module(
            "minerlens_lab.benign.hashloop",
            f"--mode={mode}",
            f"--algo={algo}",
            f"--threads={repeat_threads(ctx)}",
            f"--log={self.log(ctx)}",
            threads=1,
        )


class GoSha256(_HashingJob):
    name = "go-sha256"
    variant = "64-goroutines"
    subsets = (CI_SUBSET,)
    description = "a Go program hashing (double SHA-256) in 64 goroutines on GOMAXPROCS=cores (1, 2x): sysmon naps"
    requires = ("go",)

    def prepare(self, ctx: RunContext) -> None:
        go_binary(ctx.cache_dir)

    def command(self, ctx: RunContext) -> list[str]:
        goroutines = setting(ctx, "goroutines", (64, 8, 512))
        return [
            "env",
            f"GOMAXPROCS={repeat_threads(ctx)}",
            str(go_binary(ctx.cache_dir)),
            "hash",
            "-goroutines",
            str(goroutines),
            "-log",
            self.log(ctx),
        ]


_SPEED_RESULT = re.compile(r"^\+R:(\d+):([\w-]+):([\d.]+)$", re.M)
"""a ``-multi`` child's result line: operations, algorithm, seconds"""
_SPEED_TABLE = re.compile(r"^([A-Za-z][\w-]*)\s+([\d.]+)k\s*$", re.M)
"""the summary table of a single-process run (one block size): algorithm, 1000s of bytes per second"""


class _OpensslSpeed(_HashingJob):
    requires = ("openssl",)
    algorithms: tuple[str, ...] = ()
    sizes: tuple[int, ...] = (64, 1024, 16384)

    def command(self, ctx: RunContext) -> list[str]:
        algo, size = setting(ctx, "algorithm", self.algorithms), setting(ctx, "block_bytes", self.sizes)
        argv = ["openssl", "speed", "-seconds", str(max(1, whole_seconds(ctx) - 1)), "-bytes", str(size)]
        threads = repeat_threads(ctx)
        if threads > 1:
            argv += ["-multi", str(threads)]
        return with_output([*argv, "-evp", algo], ctx.workdir / "speed.log")

    def check(self, ctx: RunContext) -> None:
        log = read_log(ctx.workdir / "speed.log")
        results = _SPEED_RESULT.findall(log)
        table = _SPEED_TABLE.findall(log)
        ctx.facts["operations"] = sum(int(n) for n, _, _ in results)
        ctx.facts["processes_reporting"] = len(results)
        if table:
            ctx.facts["kbytes_per_s"] = float(table[-1][1])
        if not results and not table:
            msg = f"openssl speed reported no result: {log.strip()[-300:]!r}"
            raise RuntimeError(msg)


class OpensslSpeedSha256(_OpensslSpeed):
    name = "openssl-speed-sha256"
    variant = "evp-sha256"
    description = "openssl speed -evp sha256/sha512 (64 B, 1 KiB, 16 KiB blocks by repeat), -multi <threads>"
    algorithms = ("sha256", "sha256", "sha512")


class OpensslSpeedAes(_OpensslSpeed):
    name = "openssl-speed-aes"
    variant = "evp-aes-gcm"
    description = "openssl speed -evp aes-256-gcm / aes-128-cbc / chacha20-poly1305 by repeat, -multi <threads>"
    algorithms = ("aes-256-gcm", "aes-128-cbc", "chacha20-poly1305")
