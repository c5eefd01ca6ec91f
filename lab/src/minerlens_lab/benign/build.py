"""A real C build: LuaJIT 2.1 compiled with gcc and its own Makefiles (host tools, buildvm, the VM).

The sources come from the ``lupa`` sdist on PyPI (it vendors LuaJIT), fetched once with pip into the
cache; every run builds from a fresh copy, so each repeat is a full, clean build.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from minerlens_lab.benign.common import LOOKALIKE_REPEATS, read_log, repeat_threads, setting, shell_loop
from minerlens_lab.workload import RunContext, Workload

SDIST = "lupa"
SDIST_VERSION = "2.8"
SUBDIR = "third-party/luajit21"
GENERATED = ("lj_bcdef.h", "lj_ffdef.h", "lj_libdef.h", "lj_recdef.h", "lj_folddef.h")
AMALG_FLAGS = (
    "-fomit-frame-pointer",
    "-Wall",
    "-D_FILE_OFFSET_BITS=64",
    "-D_LARGEFILE_SOURCE",
    "-U_FORTIFY_SOURCE",
    "-fno-stack-protector",
    "-DLUAJIT_UNWIND_EXTERNAL",
)
MIN_BUSY_SHARE = 0.25
"""a compile that finished no object must at least have kept a core this busy (in core-seconds/second)"""


def luajit_sources(cache_dir: Path) -> Path:
    """The LuaJIT source tree, extracted once from the pinned sdist into the cache."""
    dest = cache_dir / f"luajit-src-{SDIST}-{SDIST_VERSION}"
    if (dest / "Makefile").exists():
        return dest
    cache_dir.mkdir(parents=True, exist_ok=True)
    sdists = cache_dir / "sdists"
    tarball = sdists / f"{SDIST}-{SDIST_VERSION}.tar.gz"
    if not tarball.exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                str(sdists),
                f"{SDIST}=={SDIST_VERSION}",
            ],
            check=True,
            capture_output=True,
        )
    prefix = f"{SDIST}-{SDIST_VERSION}/{SUBDIR}/"
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp, tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        tar.extractall(tmp, members=members, filter="data")
        partial = dest.with_name(dest.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        Path(tmp, prefix).rename(partial)
        partial.rename(dest)
    return dest


class MakeLuajit(Workload):
    name = "make-luajit"
    family = "build"
    label = "benign"
    variant = "gcc-O2-parallel"
    description = "make -j<threads> of LuaJIT 2.1 (gcc, host buildvm, DynASM, amalgamated VM) from clean sources"
    requires = ("gcc", "make", "ar", "strip")

    def fetch(self, cache_dir: Path) -> None:
        luajit_sources(cache_dir)

    def prepare(self, ctx: RunContext) -> None:
        shutil.copytree(luajit_sources(ctx.cache_dir), ctx.workdir / "luajit", symlinks=True)

    def command(self, ctx: RunContext) -> list[str]:
        return ["make", "-C", str(ctx.workdir / "luajit"), f"-j{repeat_threads(ctx)}"]

    def check(self, ctx: RunContext) -> None:
        src = ctx.workdir / "luajit" / "src"
        ctx.facts["objects_built"] = len(list(src.glob("*.o")))
        ctx.facts["luajit_linked"] = (src / "luajit").exists()
        host = src / "host"
        tools = [t for t in ("minilua", "buildvm") if (host / t).exists()]
        ctx.facts["files_built"] = ctx.facts["objects_built"] + len(list(host.glob("*.o"))) + len(tools)
        if not ctx.facts["objects_built"] and "minilua" not in tools:
            msg = "the build compiled nothing"
            raise RuntimeError(msg)


def luajit_generated(cache_dir: Path) -> Path:
    """The LuaJIT tree with its generated headers (host ``buildvm`` run once), ready for the amalgamated
    compile; made once into the cache."""
    dest = cache_dir / f"luajit-gen-{SDIST}-{SDIST_VERSION}"
    if all((dest / "src" / h).exists() for h in GENERATED):
        return dest
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        tree = Path(tmp) / "luajit"
        shutil.copytree(luajit_sources(cache_dir), tree, symlinks=True)
        subprocess.run(["make", "-C", str(tree / "src"), *GENERATED], check=True, capture_output=True)
        shutil.rmtree(dest, ignore_errors=True)
        tree.rename(dest)
    return dest


class GccAmalgLuajit(Workload):
    name = "gcc-amalg-luajit"
    family = "build"
    label = "benign"
    variant = "gcc-one-big-tu"
    description = (
        "gcc -O2 (-O1, -O3 by repeat) of LuaJIT's amalgamated ljamalg.c (the whole VM in one translation unit),"
        " again and again: one cc1 busy for 15-30 s with almost no syscalls"
    )
    requires = ("gcc", "make")
    repeats = LOOKALIKE_REPEATS
    imitates = "a single-threaded no-yield miner: one process computing for many seconds with almost no syscalls"

    def fetch(self, cache_dir: Path) -> None:
        luajit_generated(cache_dir)

    def prepare(self, ctx: RunContext) -> None:
        luajit_generated(ctx.cache_dir)

    def command(self, ctx: RunContext) -> list[str]:
        src = luajit_generated(ctx.cache_dir) / "src"
        level = setting(ctx, "optimisation", ("-O2", "-O1", "-O3"))
        obj = ctx.workdir / "ljamalg.o"
        flags = " ".join(AMALG_FLAGS)
        return shell_loop(
            f"gcc {level} {flags} -I{src} -c {src}/ljamalg.c -o {obj}.tmp && mv {obj}.tmp {obj}"
            f" && echo done >>{ctx.workdir}/done.log"
        )

    def check(self, ctx: RunContext) -> None:
        done = len(read_log(ctx.workdir / "done.log").splitlines())
        ctx.facts["objects_compiled"] = done
        if done:
            return
        # a compile takes 15-30 s: a shorter capture sees none finish; it must still have kept gcc busy
        busy = (ctx.cpu_seconds or 0.0) / ctx.seconds
        ctx.facts["busy_cores"] = round(busy, 3)
        if busy < MIN_BUSY_SHARE:
            msg = f"no object compiled and gcc was hardly busy ({busy:.2f} cores)"
            raise RuntimeError(msg)
