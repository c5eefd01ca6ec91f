"""CPU- and memory-bound batch jobs: sysbench and stress-ng.

stress-ng's hashing and crypt stressors are the hard negatives: like a miner they hash all day with
few syscalls, but they are not mining.
"""

from __future__ import annotations

import re
import subprocess

from minerlens_lab.benign.common import (
    LOOKALIKE_REPEATS,
    last_float,
    read_log,
    repeat_threads,
    whole_seconds,
    with_output,
)
from minerlens_lab.workload import RunContext, Workload

FILEIO_SIZE = "256M"
FILEIO_FILES = "16"


class _Sysbench(Workload):
    family = "batch-cpu"
    label = "benign"
    requires = ("sysbench",)
    test: str = ""
    test_args: tuple[str, ...] = ()

    def sysbench(self, ctx: RunContext) -> list[str]:
        return [
            "sysbench",
            self.test,
            *self.test_args,
            f"--threads={repeat_threads(ctx)}",
            f"--time={whole_seconds(ctx)}",
            "--report-interval=1",
            "run",
        ]

    def command(self, ctx: RunContext) -> list[str]:
        return with_output(self.sysbench(ctx), ctx.workdir / "sysbench.log")

    def check(self, ctx: RunContext) -> None:
        log = read_log(ctx.workdir / "sysbench.log")
        reports = re.findall(r"^\[ *\d+s \]", log, flags=re.M)
        ctx.facts["reports"] = len(reports)
        total = last_float(r"total number of events:\s*([\d.]+)", log)
        if total is not None:
            ctx.facts["events"] = int(total)
        if not reports and total is None:
            msg = f"sysbench {self.test} reported nothing: {log.strip()[-300:]!r}"
            raise RuntimeError(msg)


class SysbenchCpu(_Sysbench):
    name = "sysbench-cpu"
    variant = "primes-20000"
    description = "sysbench cpu: prime numbers up to 20000, one thread per core (1, 2x by repeat)"
    repeats = LOOKALIKE_REPEATS
    imitates = "a no-yield miner's compute: integer arithmetic on every core, almost no syscalls"
    test = "cpu"
    test_args = ("--cpu-max-prime=20000",)

    def check(self, ctx: RunContext) -> None:
        super().check(ctx)
        eps = last_float(r"eps: ([\d.]+)", read_log(ctx.workdir / "sysbench.log"))
        if eps is not None:
            ctx.facts["events_per_s"] = eps


class SysbenchMemory(_Sysbench):
    name = "sysbench-memory"
    variant = "1MiB-blocks"
    description = "sysbench memory: 1 MiB block reads/writes, one thread per core"
    test = "memory"
    test_args = ("--memory-block-size=1M", "--memory-total-size=10000G", "--memory-oper=write")


class SysbenchFileio(_Sysbench):
    name = "sysbench-fileio"
    variant = "rndrw-256M"
    description = "sysbench fileio: random read/write over 16 files (256 MiB), fsync every 100 requests"
    test = "fileio"
    test_args = (
        f"--file-total-size={FILEIO_SIZE}",
        f"--file-num={FILEIO_FILES}",
        "--file-test-mode=rndrw",
        "--file-fsync-freq=100",
    )

    def prepare(self, ctx: RunContext) -> None:
        fio = ctx.workdir / "fileio"
        fio.mkdir()
        subprocess.run(
            ["sysbench", "fileio", f"--file-total-size={FILEIO_SIZE}", f"--file-num={FILEIO_FILES}", "prepare"],
            cwd=fio,
            check=True,
            capture_output=True,
        )

    def command(self, ctx: RunContext) -> list[str]:
        return with_output(
            ["env", "-C", str(ctx.workdir / "fileio"), *self.sysbench(ctx)], ctx.workdir / "sysbench.log"
        )


_METRIC_ROW = re.compile(r"metrc: \[\d+\] ([a-z][\w-]*)\s+(\d+)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+", re.M)


class _StressNg(Workload):
    family = "batch-cpu"
    label = "benign"
    requires = ("stress-ng",)
    stressors: tuple[str, ...] = ()

    def command(self, ctx: RunContext) -> list[str]:
        n = repeat_threads(ctx)
        args = [a.replace("{threads}", str(n)) for a in self.stressors]
        return [
            "stress-ng",
            *args,
            "-t",
            f"{whole_seconds(ctx)}s",
            "--metrics-brief",
            "--log-file",
            str(ctx.workdir / "stress-ng.log"),
        ]

    def check(self, ctx: RunContext) -> None:
        log = read_log(ctx.workdir / "stress-ng.log")
        for stressor, ops in _METRIC_ROW.findall(log):
            ctx.facts[f"bogo_ops_{stressor}"] = int(ops)
        if "error" in log.lower() and "successful run completed" not in log:
            msg = f"stress-ng failed: {log.strip()[-300:]!r}"
            raise RuntimeError(msg)


class StressCpuAll(_StressNg):
    name = "stress-ng-cpu-all"
    variant = "cpu-method-all"
    description = "stress-ng --cpu with every CPU method in turn (integer, float, bit ops, hashes, sorting...)"
    stressors = ("--cpu", "{threads}", "--cpu-method", "all")


class StressCryptHash(_StressNg):
    name = "stress-ng-crypt-hash"
    variant = "crypt+hash"
    description = "stress-ng --crypt (crypt(3): SHA-512, yescrypt...) and --hash (many non-cryptographic hashes)"
    repeats = LOOKALIKE_REPEATS
    imitates = "a miner's hashing: cryptographic and non-cryptographic hashes all day (but syscall-heavy bookkeeping)"
    stressors = ("--crypt", "{threads}", "--hash", "{threads}")


class StressMatrix(_StressNg):
    name = "stress-ng-matrix"
    variant = "matrix-method-all"
    description = "stress-ng --matrix: dense floating point matrix operations, every method"
    stressors = ("--matrix", "{threads}", "--matrix-method", "all")
