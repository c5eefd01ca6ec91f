"""The few libbpf (>= 1.0) calls the eBPF source needs, through ctypes: open/load/attach an object, map fds,
element and batch map operations, and a ring buffer consumer.

libbpf's ABI is versioned and stable (``libbpf.so.1``), so a binding of ~20 functions stays small; there is no
helper process, no protocol and no second binary to ship (see docs/collector.md, "Why ctypes over libbpf").
Every call that fails raises ``BpfError`` with the errno; libbpf 1.x returns ``-errno`` and sets ``errno``. An
``EPERM`` also names the capabilities this process lacks (``permission_hint``): the kernel's own answer is
only "Operation not permitted", and libbpf's stderr blames ``RLIMIT_MEMLOCK``, which kernels >= 5.11 no
longer use for BPF memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from functools import cache
from pathlib import Path
from typing import Any

c_void_p, c_int, c_uint32, c_uint64, c_char_p, c_size_t = (
    ctypes.c_void_p,
    ctypes.c_int,
    ctypes.c_uint32,
    ctypes.c_uint64,
    ctypes.c_char_p,
    ctypes.c_size_t,
)
SampleFn = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)

BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
NEEDED_CAPABILITIES = {"CAP_BPF": 39, "CAP_PERFMON": 38}
"""What loading and attaching the tracing program needs (kernel >= 5.8; measured in
tests/collector/test_capabilities_live.py): CAP_BPF for the maps, BTF and the program, CAP_PERFMON for a
tracing program (``tp_btf``) and the pointer reads it does."""


class BpfError(OSError):
    """A libbpf call failed (errno set)."""


_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "bpf_object__open_file": (c_void_p, [c_char_p, c_void_p]),
    "bpf_object__load": (c_int, [c_void_p]),
    "bpf_object__close": (None, [c_void_p]),
    "bpf_object__find_program_by_name": (c_void_p, [c_void_p, c_char_p]),
    "bpf_object__find_map_by_name": (c_void_p, [c_void_p, c_char_p]),
    "bpf_program__attach": (c_void_p, [c_void_p]),
    "bpf_link__destroy": (c_int, [c_void_p]),
    "bpf_map__fd": (c_int, [c_void_p]),
    "bpf_map__set_max_entries": (c_int, [c_void_p, c_uint32]),
    "bpf_map__max_entries": (c_uint32, [c_void_p]),
    "bpf_map__key_size": (c_uint32, [c_void_p]),
    "bpf_map__value_size": (c_uint32, [c_void_p]),
    "bpf_map_update_elem": (c_int, [c_int, c_void_p, c_void_p, c_uint64]),
    "bpf_map_lookup_elem": (c_int, [c_int, c_void_p, c_void_p]),
    "bpf_map_delete_elem": (c_int, [c_int, c_void_p]),
    "bpf_map_get_next_key": (c_int, [c_int, c_void_p, c_void_p]),
    "bpf_map_lookup_batch": (
        c_int,
        [c_int, c_void_p, c_void_p, c_void_p, c_void_p, ctypes.POINTER(c_uint32), c_void_p],
    ),
    "bpf_map_delete_batch": (c_int, [c_int, c_void_p, ctypes.POINTER(c_uint32), c_void_p]),
    "ring_buffer__new": (c_void_p, [c_int, SampleFn, c_void_p, c_void_p]),
    "ring_buffer__consume": (c_int, [c_void_p]),
    "ring_buffer__free": (None, [c_void_p]),
    "libbpf_num_possible_cpus": (c_int, []),
    "libbpf_major_version": (c_uint32, []),
}


@cache
def lib() -> ctypes.CDLL:
    """libbpf.so.1, with the signatures above; ``BpfError`` when it is not installed or too old."""
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        handle = ctypes.CDLL(name, use_errno=True)
    except OSError as e:
        msg = f"libbpf is not installed ({e}); apt-get install libbpf1 (libbpf-dev to build)"
        raise BpfError(msg) from e
    for fn, (restype, argtypes) in _SIGNATURES.items():
        try:
            f = getattr(handle, fn)
        except AttributeError as e:
            msg = f"libbpf {name} lacks {fn} (libbpf >= 1.0 is needed)"
            raise BpfError(msg) from e
        f.restype, f.argtypes = restype, argtypes
    return handle


def effective_capabilities(status: Path = Path("/proc/self/status")) -> int | None:
    """This process's effective capability mask (``CapEff``), or ``None`` when it cannot be read."""
    try:
        for line in status.read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return None


def missing_capabilities(status: Path = Path("/proc/self/status")) -> list[str]:
    """Which of ``NEEDED_CAPABILITIES`` this process does not hold (empty when unknown)."""
    eff = effective_capabilities(status)
    if eff is None:
        return []
    return [name for name, bit in NEEDED_CAPABILITIES.items() if not eff >> bit & 1]


def permission_hint(err: int) -> str:
    """What to tell about an ``EPERM`` from the kernel ("" for any other errno)."""
    if err != errno.EPERM:
        return ""
    missing = missing_capabilities()
    if missing:
        return (
            f" (this process lacks {' and '.join(missing)}; the eBPF source needs CAP_BPF + CAP_PERFMON,"
            " see docs/deploy.md#collector-privileges)"
        )
    return " (CAP_BPF and CAP_PERFMON are held: a seccomp profile, an LSM or kernel lockdown refused it)"


def _error(err: int, what: str) -> BpfError:
    return BpfError(err, f"{what}: {os.strerror(err)}{permission_hint(err)}")


def check(rc: int, what: str) -> int:
    """``rc`` when >= 0, else ``BpfError`` with the errno libbpf returned."""
    if rc < 0:
        raise _error(-rc, what)
    return rc


def check_ptr(ptr: int | None, what: str) -> int:
    if not ptr:
        raise _error(ctypes.get_errno() or errno.EINVAL, what)
    return ptr


def possible_cpus() -> int:
    return check(lib().libbpf_num_possible_cpus(), "libbpf_num_possible_cpus")
