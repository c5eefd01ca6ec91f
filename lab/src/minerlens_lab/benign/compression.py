"""Compression of a sizeable generated input with xz, gzip and zstd, file after file like a backup job."""

from __future__ import annotations

import random
import shlex
from pathlib import Path

from minerlens_lab.benign.common import LOOKALIKE_REPEATS, repeat_threads, setting, shell_loop
from minerlens_lab.workload import CI_SUBSET, RunContext, Workload

INPUT_MIB = 64
MIN_BUSY_CORES = 0.25
"""a compressor that wrote nothing yet must at least have kept this much of a core busy"""


def generated_input(cache_dir: Path, mib: int = INPUT_MIB) -> Path:
    """A reproducible mix of web-server logs, JSON records and incompressible bytes (cached)."""
    path = cache_dir / f"compression-input-{mib}MiB.bin"
    if path.exists() and path.stat().st_size == mib << 20:
        return path
    rng = random.Random(20240501)  # noqa: S311 - test data, not secrets
    methods, codes = ["GET", "GET", "GET", "POST", "PUT", "DELETE"], [200, 200, 200, 200, 301, 404, 500]
    agents = ["curl/8.1", "Mozilla/5.0 (X11; Linux x86_64)", "kube-probe/1.29", "Go-http-client/1.1"]
    words = ["users", "orders", "items", "static", "api", "v1", "v2", "search", "cart", "img", "login"]
    chunks: list[bytes] = []
    size, target = 0, mib << 20
    while size < target:
        lines = []
        for _ in range(2000):
            ip = ".".join(str(rng.randint(1, 254)) for _ in range(4))
            url = "/" + "/".join(rng.choice(words) for _ in range(rng.randint(1, 4)))
            lines.append(
                f"{ip} - - [01/May/2024:{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
                f' +0000] "{rng.choice(methods)} {url}?id={rng.randint(1, 99999)} HTTP/1.1" {rng.choice(codes)}'
                f' {rng.randint(100, 90000)} "-" "{rng.choice(agents)}"\n'
            )
        block = "".join(lines).encode()
        records = "".join(
            f'{{"id":{rng.randint(1, 10**9)},"user":"{rng.choice(words)}{rng.randint(1, 999)}",'
            f'"total":{rng.random() * 1000:.2f},"items":{rng.randint(1, 20)}}}\n'
            for _ in range(1000)
        ).encode()
        noise = rng.randbytes(len(block) // 10)
        for piece in (block, records, noise):
            chunks.append(piece)
            size += len(piece)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    tmp.write_bytes(b"".join(chunks)[:target])
    tmp.rename(path)
    return path


class _Compress(Workload):
    family = "compression"
    label = "benign"
    suffix: str = ""

    def compressor(self, ctx: RunContext) -> list[str]:
        raise NotImplementedError

    def prepare(self, ctx: RunContext) -> None:
        generated_input(ctx.cache_dir)

    def command(self, ctx: RunContext) -> list[str]:
        src = generated_input(ctx.cache_dir)
        out = ctx.workdir / f"archive{self.suffix}"
        tool = shlex.join(self.compressor(ctx))
        done = shlex.quote(str(ctx.workdir / "done.log"))
        # compress to a temporary name, then rename: a finished archive is always whole
        return shell_loop(
            f"{tool} <{shlex.quote(str(src))} >{shlex.quote(str(out))}.tmp"
            f" && mv {shlex.quote(str(out))}.tmp {shlex.quote(str(out))} && echo done >>{done}"
        )

    def check(self, ctx: RunContext) -> None:
        done = ctx.workdir / "done.log"
        ctx.facts["files_compressed"] = len(done.read_text().splitlines()) if done.exists() else 0
        out = ctx.workdir / f"archive{self.suffix}"
        if out.exists():
            ctx.facts["ratio"] = round((INPUT_MIB << 20) / max(1, out.stat().st_size), 2)
        partial = Path(f"{out}.tmp")
        if partial.exists():
            ctx.facts["partial_bytes_out"] = partial.stat().st_size
        elif not out.exists():
            msg = f"{self.name} never started compressing"
            raise RuntimeError(msg)
        if ctx.cpu_seconds is not None:
            ctx.facts["busy_cores"] = round(ctx.cpu_seconds / ctx.seconds, 3)
        if not ctx.facts["files_compressed"] and not ctx.facts.get("partial_bytes_out"):
            # xz -T and zstd -T buffer whole blocks: a short run may not have written a byte yet, but
            # the compressor must at least have been busy
            busy = ctx.facts.get("busy_cores", 0.0)
            if busy < MIN_BUSY_CORES:
                msg = f"{self.name} wrote nothing and was hardly busy ({busy} cores)"
                raise RuntimeError(msg)


class XzCompress(_Compress):
    name = "xz-compress"
    variant = "xz-6-mt-8MiB-blocks"
    description = f"xz -6, a thread per core, 8 MiB blocks, over a {INPUT_MIB} MiB mix of logs, JSON and random bytes"
    requires = ("xz",)
    suffix = ".xz"

    def compressor(self, ctx: RunContext) -> list[str]:
        return ["xz", f"-T{repeat_threads(ctx)}", "-6", "--block-size=8MiB", "-c"]


class GzipCompress(_Compress):
    name = "gzip-compress"
    variant = "gzip"
    subsets = (CI_SUBSET,)
    description = f"gzip -6 (-1, -9 by repeat; single thread) over a {INPUT_MIB} MiB mix of logs, JSON and random bytes"
    requires = ("gzip",)
    suffix = ".gz"

    def compressor(self, ctx: RunContext) -> list[str]:
        level = setting(ctx, "level", ("-6", "-1", "-9"))
        return ["gzip", level, "-c"]


class ZstdCompress(_Compress):
    name = "zstd-compress"
    variant = "zstd-mt"
    description = f"zstd -12 (-3, -19 by repeat), a worker per core, over the {INPUT_MIB} MiB logs/JSON/random mix"
    requires = ("zstd",)
    suffix = ".zst"

    def compressor(self, ctx: RunContext) -> list[str]:
        level = setting(ctx, "level", ("-12", "-3", "-19"))
        return ["zstd", f"-T{repeat_threads(ctx)}", level, "-q", "-c"]


class XzExtreme(_Compress):
    name = "xz-9e"
    variant = "xz-9e-single-thread"
    description = (
        f"xz -9e (-8e, -7e by repeat), one thread, over the {INPUT_MIB} MiB input: minutes of compute per file,"
        " a 64 MiB dictionary, a read every few milliseconds"
    )
    requires = ("xz",)
    suffix = ".xz"
    repeats = LOOKALIKE_REPEATS
    imitates = "a single-threaded no-yield miner: one core busy, big memory working set, rare syscalls"

    def compressor(self, ctx: RunContext) -> list[str]:
        level = setting(ctx, "level", ("-9e", "-8e", "-7e"))
        return ["xz", "-T1", level, "-c"]
