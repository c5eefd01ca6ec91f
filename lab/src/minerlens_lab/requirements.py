"""Whether a workload can run here: its required executables, ``python:MODULE`` entries, and
``tcp:HOST:PORT`` services that must be listening (the project's Kafka, for instance)."""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import socket

from minerlens_lab.workload import Workload

PYTHON_PREFIX = "python:"
TCP_PREFIX = "tcp:"
TCP_TIMEOUT_S = 1.0


def is_executable(requirement: str) -> bool:
    """Whether a ``requires`` entry names an executable (rather than a module or a service)."""
    return not requirement.startswith((PYTHON_PREFIX, TCP_PREFIX))


def missing_requirements(w: Workload) -> list[str]:
    """What ``w.requires`` names that this machine lacks: executables not on PATH (or absolute paths
    that are not executable), ``python:MODULE`` entries whose module cannot be imported, and
    ``tcp:HOST:PORT`` services that do not accept a connection."""
    missing: list[str] = []
    for req in w.requires:
        if req.startswith(PYTHON_PREFIX):
            module = req.removeprefix(PYTHON_PREFIX)
            if importlib.util.find_spec(module) is None:
                missing.append(f"python module {module}")
        elif req.startswith(TCP_PREFIX):
            host, _, port = req.removeprefix(TCP_PREFIX).rpartition(":")
            if not _listening(host, port):
                missing.append(f"a service listening on {host}:{port}")
        elif shutil.which(req) is None:
            missing.append(req)
    return missing


def _listening(host: str, port: str) -> bool:
    if not host or not port.isdigit():
        return False
    with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=TCP_TIMEOUT_S):
        return True
    return False
