"""Compile the lab's C miner (and the CryptoNight-like verifier library) with the system compiler.

Binaries are cached in ``cache_dir/miners`` under a digest of the sources, the flags and the compiler,
so a changed source rebuilds and an unchanged one is reused across runs. RandomX support needs the
reference library's headers (Debian: ``librandomx-dev``); without them the miner is built without it
and ``-a rx/0`` fails with a message saying so.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from minerlens_core.errors import MinerlensError

SRC = Path(__file__).parent / "c"
CFLAGS = ("-O2", "-Wall", "-Wextra", "-std=gnu11", "-pthread")
_CNLIKE_SOURCES = ("cnlike.c", "sha256.c")
_RANDOMX_PROBE = "#include <randomx.h>\nint main(void) { return randomx_get_flags() == RANDOMX_FLAG_SECURE; }\n"


class BuildError(MinerlensError):
    """The miner cannot be compiled here (no compiler, no OpenSSL headers...)."""


def compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        msg = "no C compiler on PATH (install build-essential)"
        raise BuildError(msg)
    return cc


@functools.cache
def _compiler_id(cc: str) -> str:
    out = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0] if out else cc


@functools.cache
def randomx_available(cc: str | None = None) -> bool:
    """Whether librandomx (headers and library) can be compiled against."""
    cc = cc or compiler()
    with tempfile.TemporaryDirectory(prefix="minerlens-rx-probe-") as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(_RANDOMX_PROBE)
        done = subprocess.run(
            [cc, "-o", str(Path(tmp) / "probe"), str(src), "-lrandomx"], capture_output=True, check=False
        )
    return done.returncode == 0


def _digest(sources: list[Path], flags: list[str], cc: str) -> str:
    h = hashlib.sha256()
    for f in sorted({*sources, *SRC.glob("*.h")}):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    h.update(" ".join(flags).encode())
    h.update(_compiler_id(cc).encode())
    return h.hexdigest()[:16]


def _compile(out: Path, argv: list[str]) -> Path:
    """Run the compiler into a temporary name and move it into place (concurrent builds are safe)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    done = subprocess.run([*argv, "-o", str(tmp)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        hint = " (install libssl-dev)" if "openssl/" in done.stderr else ""
        msg = f"compiling {out.name} failed{hint}:\n{done.stderr.strip()}"
        raise BuildError(msg)
    if done.stderr.strip():
        tmp.unlink(missing_ok=True)
        msg = f"compiling {out.name} gave warnings (the lab builds warning-free):\n{done.stderr.strip()}"
        raise BuildError(msg)
    os.replace(tmp, out)
    return out


def build_miner(cache_dir: Path) -> Path:
    """The ``minerlens-miner`` executable, compiled into ``cache_dir/miners`` if not there yet."""
    cc = compiler()
    sources = sorted(SRC.glob("*.c"))
    flags = list(CFLAGS)
    libs = ["-lcrypto"]
    if randomx_available(cc):
        libs.append("-lrandomx")
    else:
        flags.append("-DML_NO_RANDOMX")
    out = cache_dir / "miners" / f"minerlens-miner-{_digest(sources, [*flags, *libs], cc)}"
    if out.exists():
        return out
    return _compile(out, [cc, *flags, *map(str, sources), *libs])


def build_program(cache_dir: Path, name: str, sources: list[Path], libs: tuple[str, ...] = ()) -> Path:
    """A helper program (e.g. the XMRig noise companion) compiled into ``cache_dir/miners/<name>-<digest>/<name>``,
    so that it runs under its own name (``/proc/<pid>/comm``). It may include the miner's headers (``-I`` on
    their directory, e.g. ``noise_pacing.h``)."""
    cc = compiler()
    flags = [*CFLAGS, f"-I{SRC}"]
    out = cache_dir / "miners" / f"{name}-{_digest(sources, [*flags, *libs], cc)}" / name
    if out.exists():
        return out
    return _compile(out, [cc, *flags, *map(str, sources), *libs])


def build_cnlike_library(cache_dir: Path) -> Path:
    """A shared library exporting ``cnlike_hash_alloc`` for the pool's share verification (ctypes)."""
    cc = compiler()
    sources = [SRC / name for name in _CNLIKE_SOURCES]
    flags = [*CFLAGS, "-shared", "-fPIC"]
    out = cache_dir / "miners" / f"libcnlike-{_digest(sources, flags, cc)}.so"
    if out.exists():
        return out
    return _compile(out, [cc, *flags, *map(str, sources)])
