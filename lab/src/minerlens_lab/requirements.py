"""Whether a workload can run here: its required executables (and ``python:MODULE`` entries)."""

from __future__ import annotations

import importlib.util
import shutil

from minerlens_lab.workload import Workload

PYTHON_PREFIX = "python:"


def missing_requirements(w: Workload) -> list[str]:
    """What ``w.requires`` names that this machine lacks: executables not on PATH (or absolute paths
    that are not executable), and ``python:MODULE`` entries whose module cannot be imported."""
    missing: list[str] = []
    for req in w.requires:
        if req.startswith(PYTHON_PREFIX):
            module = req.removeprefix(PYTHON_PREFIX)
            if importlib.util.find_spec(module) is None:
                missing.append(f"python module {module}")
        elif shutil.which(req) is None:
            missing.append(req)
    return missing
