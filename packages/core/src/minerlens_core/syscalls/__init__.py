"""Syscall number <-> name mapping per architecture (x86_64 and arm64).

The tables are generated from the kernel UAPI headers by ``tools/gen_syscall_tables.py``.
"""

from __future__ import annotations

import enum
import platform
from functools import cache

from minerlens_core.syscalls._tables import ARM64, X86_64


class Arch(enum.StrEnum):
    X86_64 = "x86_64"
    ARM64 = "arm64"


_TABLES: dict[Arch, dict[int, str]] = {Arch.X86_64: X86_64, Arch.ARM64: ARM64}
_MACHINE_ALIASES = {"x86_64": Arch.X86_64, "amd64": Arch.X86_64, "aarch64": Arch.ARM64, "arm64": Arch.ARM64}


class UnknownArchError(ValueError):
    """The architecture has no syscall table."""


def parse_arch(value: str) -> Arch:
    try:
        return _MACHINE_ALIASES[value.lower()]
    except KeyError:
        msg = f"unsupported architecture {value!r}; known: {sorted(_MACHINE_ALIASES)}"
        raise UnknownArchError(msg) from None


def host_arch() -> Arch:
    return parse_arch(platform.machine())


def table(arch: Arch) -> dict[int, str]:
    return _TABLES[arch]


@cache
def _reverse(arch: Arch) -> dict[str, int]:
    return {name: nr for nr, name in _TABLES[arch].items()}


def syscall_name(nr: int, arch: Arch) -> str:
    """Name of syscall ``nr``; unknown numbers map to ``sys_<nr>`` so no event is ever dropped."""
    return _TABLES[arch].get(nr, f"sys_{nr}")


def syscall_number(name: str, arch: Arch) -> int | None:
    """Number of a syscall by name (accepts ``sys_enter_`` / ``sys_`` prefixes and ``sys_<nr>``)."""
    name = name.removeprefix("sys_enter_")
    rev = _reverse(arch)
    if name in rev:
        return rev[name]
    bare = name.removeprefix("sys_")
    if bare in rev:
        return rev[bare]
    if bare.isdigit():
        return int(bare)
    return None


__all__ = ["Arch", "UnknownArchError", "host_arch", "parse_arch", "syscall_name", "syscall_number", "table"]
