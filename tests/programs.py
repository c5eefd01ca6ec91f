"""Build the small C ground-truth programs under tests/programs with the system compiler (cached)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

SRC = Path(__file__).parent / "programs"
CACHE = Path(__file__).resolve().parent.parent / ".local" / "test-programs"


def build(name: str) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (install build-essential)")
    src = SRC / f"{name}.c"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:12]
    out = CACHE / f"{name}-{digest}"
    if not out.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([cc, "-O2", "-pthread", "-o", str(out), str(src)], check=True)
    return out
