"""CPU-bound workers fed over one long-lived connection: the hardest look-alikes of a no-yield miner,
which burns every core it has and talks to its pool over one TCP connection now and then.

Queue workers take jobs from a Redis list (the broker runs outside the pod; the producer that keeps the
queue fed and checks the results is the run's ``drive``), a render worker takes ffmpeg jobs from a
dispatcher, a training worker exchanges gradients with a parameter server. Every result is checked:
key-stretching results are recomputed, compressed payloads decompressed and compared, render jobs
counted by the dispatcher, gradient exchanges counted by the parameter server.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import random
import sys
import threading
from collections.abc import Callable

from minerlens_lab.benign.common import (
    LOOKALIKE_REPEATS,
    last_progress,
    port,
    progress_lines,
    python_module,
    read_log,
    repeat_threads,
    setting,
)
from minerlens_lab.benign.mlp_train import make_dataset
from minerlens_lab.benign.native import go_binary
from minerlens_lab.benign.outside import output_of, start_outside, still_running, stop_outside
from minerlens_lab.benign.queue_worker import QUEUE, RESULTS, SALT
from minerlens_lab.benign.redis_server import NO_PERSISTENCE, redis_server
from minerlens_lab.drive import Clock, wait_tcp
from minerlens_lab.workload import CI_SUBSET, RunContext, Workload

FED_WORKER = "a no-yield miner: cores busy computing jobs that arrive over one long-lived TCP connection"


class _Fed(Workload):
    label = "benign"
    repeats = LOOKALIKE_REPEATS
    imitates = FED_WORKER

    def cleanup(self, ctx: RunContext) -> None:
        stop_outside(ctx)

    def outside_alive(self, ctx: RunContext, name: str) -> None:
        if not still_running(ctx):
            msg = f"the {name} outside the pod died: {output_of(ctx, name)[-300:]!r}"
            raise RuntimeError(msg)


class _RedisQueueWorker(_Fed):
    """A worker in the pod; the Redis broker outside; the producer (``drive``) keeps ~2 jobs per worker
    thread queued and verifies results with ``verify``."""

    family = "queue-workers"
    requires: tuple[str, ...] = ("redis-server", "python:redis")

    def prepare(self, ctx: RunContext) -> None:
        broker = ctx.workdir / "broker"
        broker.mkdir()
        start_outside(ctx, "broker", redis_server(port(ctx), broker, *NO_PERSISTENCE), port=port(ctx))

    job_size_key: str = ""
    job_sizes: tuple[int, ...] = ()
    """the job size setting (iterations, rounds, preset) by repeat"""

    def job_size(self, ctx: RunContext) -> int:
        return setting(ctx, self.job_size_key, self.job_sizes)

    def job(self, ctx: RunContext, job_id: int, rng: random.Random) -> bytes:
        """``<id> <job size> <random 64-bit seed, hex>`` (key-stretching jobs)."""
        return f"{job_id} {self.job_size(ctx)} {rng.getrandbits(64):016x}".encode()

    def verifier(self, ctx: RunContext) -> Callable[[bytes, bytes], bool]:
        """``(job, result) -> ok``; called for a sample of the results (it costs the producer CPU)."""
        raise NotImplementedError

    def drive(self, ctx: RunContext, stop: threading.Event) -> None:
        import redis

        clock = Clock(ctx.seconds)
        if not wait_tcp("127.0.0.1", port(ctx), stop):
            return
        conn = redis.Redis(host="127.0.0.1", port=port(ctx), socket_timeout=10)
        rng = random.Random(ctx.repeat)  # noqa: S311 - test data, not secrets
        jobs: dict[bytes, bytes] = {}
        verify = self.verifier(ctx)
        target = 2 * int(ctx.facts.get("threads", ctx.threads))
        pushed = received = verified = bad = 0
        try:
            while not stop.is_set() and clock.left() > 0.2:
                queued = int(conn.llen(QUEUE))
                for _ in range(target - queued):
                    pushed += 1
                    jobs[str(pushed).encode()] = job = self.job(ctx, pushed, rng)
                    conn.rpush(QUEUE, job)
                got = conn.blpop([RESULTS], timeout=min(0.5, max(0.01, clock.left() - 0.1)))
                if not got:
                    continue
                received += 1
                result = got[1] if isinstance(got[1], bytes) else str(got[1]).encode()
                job_id = result.split(b" ", 1)[0]
                if verified + bad < 2:  # recomputing costs the producer CPU: two per run are enough
                    if job_id in jobs and verify(jobs[job_id], result):
                        verified += 1
                    else:
                        bad += 1
                jobs.pop(job_id, None)
        finally:
            conn.close()
            ctx.facts.update(
                jobs_pushed=pushed, results_received=received, results_verified=verified, results_wrong=bad
            )

    def check(self, ctx: RunContext) -> None:
        self.outside_alive(ctx, "broker")
        last_progress(ctx, ctx.workdir / "progress.log", "jobs_done")
        if ctx.facts.get("results_wrong"):
            msg = f"{ctx.facts['results_wrong']} wrong results from the worker"
            raise RuntimeError(msg)
        if not ctx.facts.get("results_verified"):
            msg = f"no result could be verified ({ctx.facts.get('results_received', 0)} received)"
            raise RuntimeError(msg)


def _pbkdf2_ok(job: bytes, result: bytes) -> bool:
    job_id, iterations, seed = job.split(b" ", 2)
    expect = hashlib.pbkdf2_hmac("sha256", seed, SALT, int(iterations)).hex().encode()
    return result == job_id + b" " + expect


class _PythonQueueWorker(_RedisQueueWorker):
    """``minerlens_lab.benign.queue_worker`` in the pod, doing jobs of its ``--kind``."""

    kind: str = ""

    def command(self, ctx: RunContext) -> list[str]:
        self.job_size(ctx)
        return python_module(
            "minerlens_lab.benign.queue_worker",
            f"--port={port(ctx)}",
            f"--kind={self.kind}",
            f"--threads={repeat_threads(ctx)}",
            f"--log={ctx.workdir / 'progress.log'}",
            threads=1,
        )


class RedisPbkdf2Worker(_PythonQueueWorker):
    name = "redis-queue-pbkdf2-worker"
    kind = "pbkdf2"
    job_size_key = "iterations_per_job"
    job_sizes = (1_000_000, 250_000, 4_000_000)
    variant = "python-pbkdf2-sha256"
    description = (
        "a Python worker on one Redis connection: BLPOP key-stretching jobs (PBKDF2-HMAC-SHA256, 1M/0.25M/4M"
        " iterations by repeat), compute on a thread per core, RPUSH results"
    )

    def verifier(self, ctx: RunContext) -> Callable[[bytes, bytes], bool]:
        return _pbkdf2_ok


_WORDS = [
    "order",
    "user",
    "item",
    "price",
    "status",
    "created",
    "updated",
    "shipping",
    "payment",
    "total",
    "GET",
    "POST",
    "200",
    "404",
    "/api/v1/orders",
    "/static/app.js",
    "Mozilla/5.0",
    "kube-probe/1.29",
    "true",
    "false",
    "null",
]


def _payload(rng: random.Random, size: int) -> bytes:
    """Log/JSON-like text with some random bytes: compressible, not trivially."""
    parts: list[bytes] = []
    n = 0
    while n < size:
        line = " ".join(rng.choice(_WORDS) for _ in range(12)).encode() + b" " + rng.randbytes(8).hex().encode()
        parts.append(line + b"\n")
        n += len(line) + 1
    return b"".join(parts)[:size]


def _lzma_ok(job: bytes, result: bytes) -> bool:
    job_id, _preset, payload = job.split(b" ", 2)
    rid, _, compressed = result.partition(b" ")
    try:
        return rid == job_id and lzma.decompress(compressed) == payload
    except lzma.LZMAError:
        return False


class RedisLzmaWorker(_PythonQueueWorker):
    name = "redis-queue-lzma-worker"
    kind = "lzma"
    job_size_key = "lzma_preset"
    job_sizes = (6, 3, 9)
    variant = "python-lzma-payloads"
    description = (
        "a Python worker on one Redis connection: BLPOP 1 MiB payloads, LZMA-compress them (preset 6/3/9 by"
        " repeat) on a thread per core, RPUSH the archives (the producer decompresses and compares)"
    )

    def job(self, ctx: RunContext, job_id: int, rng: random.Random) -> bytes:
        return f"{job_id} {self.job_size(ctx)} ".encode() + _payload(rng, 1 << 20)

    def verifier(self, ctx: RunContext) -> Callable[[bytes, bytes], bool]:
        return _lzma_ok


def _stretch_ok(job: bytes, result: bytes) -> bool:
    job_id, rounds, seed = job.split(b" ", 2)
    h = hashlib.sha256(seed).digest()
    for _ in range(int(rounds) - 1):
        h = hashlib.sha256(h).digest()
    return result == job_id + b" " + h.hex().encode()


class GoQueueWorker(_RedisQueueWorker):
    name = "go-queue-worker"
    job_size_key = "rounds_per_job"
    job_sizes = (1_000_000, 250_000, 3_000_000)
    variant = "go-resp-iterated-sha256"
    subsets = (CI_SUBSET,)
    description = (
        "a Go worker on one Redis connection (its own RESP client): BLPOP/LPOP key-stretching jobs (iterated"
        " SHA-256, 1M/0.25M/3M rounds), a goroutine per job, RPUSH results"
    )
    requires = ("redis-server", "python:redis", "go")

    def prepare(self, ctx: RunContext) -> None:
        go_binary(ctx.cache_dir)
        super().prepare(ctx)

    def command(self, ctx: RunContext) -> list[str]:
        self.job_size(ctx)
        n = repeat_threads(ctx)
        return [
            "env",
            f"GOMAXPROCS={n}",
            str(go_binary(ctx.cache_dir)),
            "queue",
            "-addr",
            f"127.0.0.1:{port(ctx)}",
            "-queue",
            QUEUE,
            "-results",
            RESULTS,
            "-workers",
            str(n),
            "-log",
            str(ctx.workdir / "progress.log"),
        ]

    def verifier(self, ctx: RunContext) -> Callable[[bytes, bytes], bool]:
        return _stretch_ok


class FfmpegRenderWorker(_Fed):
    name = "ffmpeg-render-worker"
    family = "media"
    variant = "x264-jobs-over-tcp"
    description = (
        "a render worker on one TCP connection to a dispatcher: each job is an ffmpeg run (test clip -> H.264;"
        " 360p veryfast / 720p ultrafast / 540p faster by repeat), result reported on the same connection"
    )
    requires = ("ffmpeg",)

    def prepare(self, ctx: RunContext) -> None:
        size, preset = self.render_setting(ctx)
        start_outside(
            ctx,
            "dispatcher",
            [
                sys.executable,
                "-m",
                "minerlens_lab.benign.job_server",
                f"--port={port(ctx)}",
                "--seconds=4",
                f"--size={size}",
                f"--preset={preset}",
            ],
            port=port(ctx),
        )

    def render_setting(self, ctx: RunContext) -> tuple[str, str]:
        """The clips' size and x264 preset, by repeat."""
        return setting(ctx, "size_preset", (("640x360", "veryfast"), ("1280x720", "ultrafast"), ("960x540", "faster")))

    def command(self, ctx: RunContext) -> list[str]:
        self.render_setting(ctx)
        return [
            sys.executable,
            "-m",
            "minerlens_lab.benign.render_worker",
            f"--port={port(ctx)}",
            f"--threads={repeat_threads(ctx)}",
            f"--workdir={ctx.workdir}",
        ]

    def check(self, ctx: RunContext) -> None:
        self.outside_alive(ctx, "dispatcher")
        done = [json.loads(line)["done"] for line in output_of(ctx, "dispatcher").splitlines() if '"done"' in line]
        ctx.facts["jobs_done"] = len(done)
        ctx.facts["frames_rendered"] = sum(int(d.get("frames", 0)) for d in done)
        if not done or not ctx.facts["frames_rendered"]:
            msg = f"no render job finished: {output_of(ctx, 'dispatcher')[-300:]!r}"
            raise RuntimeError(msg)


class DistTrainingWorker(_Fed):
    name = "dist-training-worker"
    family = "ml-training"
    variant = "numpy-param-server"
    description = (
        "a data-parallel training worker (NumPy MLP, BLAS threads) exchanging gradients/parameters (1.2 MB)"
        " with a parameter server outside the pod every 10/40/4 steps, over one TCP connection"
    )

    def prepare(self, ctx: RunContext) -> None:
        make_dataset(ctx.workdir / "data")
        start_outside(
            ctx,
            "param-server",
            [sys.executable, "-m", "minerlens_lab.benign.param_server", f"--port={port(ctx)}"],
            port=port(ctx),
        )

    def command(self, ctx: RunContext) -> list[str]:
        every = setting(ctx, "sync_every_steps", (10, 40, 4))
        return python_module(
            "minerlens_lab.benign.dist_worker",
            f"--port={port(ctx)}",
            f"--data={ctx.workdir / 'data'}",
            f"--sync-every={every}",
            f"--log={ctx.workdir / 'progress.log'}",
            threads=repeat_threads(ctx),
        )

    def check(self, ctx: RunContext) -> None:
        self.outside_alive(ctx, "param-server")
        lines = [line for line in progress_lines(ctx.workdir / "progress.log") if len(line) == 4]
        server_side = sum(1 for line in output_of(ctx, "param-server").splitlines() if '"exchange"' in line)
        ctx.facts["exchanges_server"] = server_side
        if not lines or not server_side:
            msg = f"no gradient exchange: {read_log(ctx.workdir / 'progress.log')[-200:]!r}"
            raise RuntimeError(msg)
        ctx.facts["exchanges"], ctx.facts["steps"] = int(lines[-1][1]), int(lines[-1][2])
        ctx.facts["first_loss"], ctx.facts["last_loss"] = lines[0][3], lines[-1][3]
