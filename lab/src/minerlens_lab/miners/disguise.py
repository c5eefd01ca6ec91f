"""A miner disguised by its binary's name: a copy of the binary under a harmless-looking one."""

from __future__ import annotations

import shutil
from pathlib import Path


def disguised_copy(binary: Path, workdir: Path, name: str) -> Path:
    """``binary`` copied to ``workdir/.cache/<name>`` (its ``/proc/<pid>/comm`` becomes ``name[:15]``)."""
    disguised = workdir / ".cache" / name
    disguised.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, disguised)
    return disguised
