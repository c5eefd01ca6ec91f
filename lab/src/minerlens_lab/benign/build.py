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

from minerlens_lab.workload import RunContext, Workload

SDIST = "lupa"
SDIST_VERSION = "2.8"
SUBDIR = "third-party/luajit21"


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

    def prepare(self, ctx: RunContext) -> None:
        shutil.copytree(luajit_sources(ctx.cache_dir), ctx.workdir / "luajit", symlinks=True)

    def command(self, ctx: RunContext) -> list[str]:
        return ["make", "-C", str(ctx.workdir / "luajit"), f"-j{ctx.threads}"]

    def check(self, ctx: RunContext) -> None:
        src = ctx.workdir / "luajit" / "src"
        ctx.facts["objects_built"] = len(list(src.glob("*.o")))
        ctx.facts["luajit_linked"] = (src / "luajit").exists()
        if not ctx.facts["objects_built"] and not (src / "host" / "minilua").exists():
            msg = "the build compiled nothing"
            raise RuntimeError(msg)
