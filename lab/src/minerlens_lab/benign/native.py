"""Build the benign workloads' own programs once into the lab cache: a Java class (javac), a Go binary
(go build, standard library only: no module download), a C program (gcc), a Node.js script.

The sources live in ``native/``; each build is cached under a digest of its sources and toolchain, so a
changed source rebuilds and an unchanged one is reused across runs. Builds go to a temporary name and
are moved into place, so an interrupted or concurrent build never leaves a half-written program.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

NATIVE = Path(__file__).parent / "native"
JAVA_CLASS = "LabJava"


class BuildFailed(RuntimeError):
    """A workload's program could not be built here."""


@functools.cache
def _tool_id(argv: tuple[str, ...]) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    return (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr).strip() else argv[0]


def _digest(sources: list[Path], *extra: str) -> str:
    h = hashlib.sha256()
    for f in sorted(sources):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    for e in extra:
        h.update(e.encode())
    return h.hexdigest()[:16]


def _run(argv: list[str], what: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    done = subprocess.run(
        argv, capture_output=True, text=True, check=False, env=None if env is None else {**os.environ, **env}, cwd=cwd
    )
    if done.returncode != 0:
        msg = (
            f"building {what} failed ({argv[0]} exit {done.returncode}):\n{(done.stdout + done.stderr).strip()[-2000:]}"
        )
        raise BuildFailed(msg)


def _which(exe: str) -> str:
    path = shutil.which(exe)
    if path is None:
        msg = f"{exe} is not installed"
        raise BuildFailed(msg)
    return path


def java_classpath(cache_dir: Path) -> Path:
    """A directory holding ``LabJava.class`` (compiled once with javac)."""
    javac = _which("javac")
    src = NATIVE / f"{JAVA_CLASS}.java"
    dest = cache_dir / "benign-native" / f"java-{_digest([src], _tool_id((javac, '-version')))}"
    if (dest / f"{JAVA_CLASS}.class").exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".java-") as tmp:
        _run([javac, "-Xlint:all", "-Werror", "-d", tmp, str(src)], "LabJava.java")
        _install_dir(Path(tmp), dest)
    return dest


def go_binary(cache_dir: Path) -> Path:
    """``labgo`` built with the local Go toolchain (offline: GOPROXY=off, GOTOOLCHAIN=local, no cgo)."""
    go = _which("go")
    src = NATIVE / "labgo" / "main.go"
    dest = cache_dir / "benign-native" / f"labgo-{_digest([src], _tool_id((go, 'version')))}"
    if dest.exists():
        return dest
    gocache = cache_dir / "benign-native" / "go-build-cache"
    env = {
        "GOCACHE": str(gocache),
        "GOPATH": str(cache_dir / "benign-native" / "gopath"),
        "GOTOOLCHAIN": "local",
        "GOPROXY": "off",
        "CGO_ENABLED": "0",
    }
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        _run([go, "build", "-trimpath", "-o", str(tmp), str(src)], "labgo", env=env)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def c_binary(cache_dir: Path, name: str) -> Path:
    """``native/<name>.c`` compiled with gcc -O2 (warning-free, or the build fails)."""
    cc = os.environ.get("CC") or _which("gcc")
    src = NATIVE / f"{name}.c"
    flags = ["-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11", "-pthread"]
    dest = cache_dir / "benign-native" / f"{name}-{_digest([src], *flags, _tool_id((cc, '--version')))}"
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        _run([cc, *flags, "-o", str(tmp), str(src)], f"{name}.c")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def node_script(name: str) -> Path:
    """A Node.js script shipped with the lab (run as it is)."""
    return NATIVE / name


def _install_dir(src: Path, dest: Path) -> None:
    partial = dest.with_name(f"{dest.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(src, partial)
    try:
        partial.rename(dest)
    except OSError:  # built concurrently by another run: theirs is as good
        shutil.rmtree(partial, ignore_errors=True)
        if not dest.exists():
            raise
