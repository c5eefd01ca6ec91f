from __future__ import annotations

import pytest
from minerlens_core.syscalls import Arch, UnknownArchError, parse_arch, syscall_name, syscall_number


@pytest.mark.parametrize(
    ("arch", "name", "nr"),
    [
        (Arch.X86_64, "read", 0),
        (Arch.X86_64, "getppid", 110),
        (Arch.X86_64, "sched_yield", 24),
        (Arch.X86_64, "futex", 202),
        (Arch.X86_64, "newfstatat", 262),
        (Arch.ARM64, "read", 63),
        (Arch.ARM64, "getppid", 173),
        (Arch.ARM64, "sched_yield", 124),
        (Arch.ARM64, "mmap", 222),
        (Arch.ARM64, "fstat", 80),
        (Arch.ARM64, "clone3", 435),
    ],
)
def test_known_numbers_per_arch(arch: Arch, name: str, nr: int) -> None:
    assert syscall_number(name, arch) == nr
    assert syscall_name(nr, arch) == name


def test_prefixes_and_unknown_numbers() -> None:
    assert syscall_number("sys_enter_getppid", Arch.X86_64) == 110
    assert syscall_number("sys_999", Arch.X86_64) == 999
    assert syscall_number("no_such_call", Arch.X86_64) is None
    assert syscall_name(999, Arch.X86_64) == "sys_999"


def test_arm64_has_no_legacy_x86_calls() -> None:
    assert syscall_number("open", Arch.ARM64) is None
    assert syscall_number("fork", Arch.ARM64) is None
    assert syscall_number("open", Arch.X86_64) == 2


def test_arch_aliases() -> None:
    assert parse_arch("aarch64") is Arch.ARM64
    assert parse_arch("amd64") is Arch.X86_64
    with pytest.raises(UnknownArchError, match="riscv"):
        parse_arch("riscv64")
