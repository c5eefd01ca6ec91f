"""Facts about the machine a dataset was made on: kernel, CPU, tool and library versions."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from minerlens_lab.requirements import is_executable

# how to ask a tool its version when ``--version`` is not it
_VERSION_FLAGS: dict[str, list[str]] = {
    "nginx": ["-v"],
    "ffmpeg": ["-version"],
    "wrk": ["-v"],
    "memcached": ["-V"],
    "go": ["version"],
    "openssl": ["version"],
}
ALWAYS = ("gcc", "make", "redis-server", "nginx", "memcached")
PYTHON_PACKAGES = ("minerlens-core", "minerlens-collector", "minerlens-lab", "numpy", "pyarrow", "torch")


def tool_version(exe: str, timeout_s: float = 5.0) -> str | None:
    """The first line a tool prints about its version, or None when it is not installed."""
    path = shutil.which(exe)
    if path is None:
        return None
    flags = _VERSION_FLAGS.get(Path(exe).name, ["--version"])
    try:
        done = subprocess.run([path, *flags], capture_output=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout + done.stderr).decode(errors="replace")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first[:200] or "unknown"


def tool_versions(requirements: Iterable[str]) -> dict[str, str]:
    """Versions of the executables the workloads require, plus a few that always matter."""
    exes = sorted({r for r in [*ALWAYS, *requirements] if is_executable(r)})
    out: dict[str, str] = {}
    for exe in exes:
        version = tool_version(exe)
        if version is not None:
            out[Path(exe).name if exe.startswith("/") else exe] = version
    return out


def python_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for pkg in PYTHON_PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def machine() -> dict[str, str | int]:
    u = os.uname()
    return {
        "kernel": u.release,
        "arch": u.machine,
        "node": u.nodename,
        "cpus": os.cpu_count() or 1,
        "os": _os_release() or platform.platform(),
    }


def _os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return ""
