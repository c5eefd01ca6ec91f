"""The few libbpf (>= 1.0) calls the eBPF source needs, through ctypes: open/load/attach an object, map fds,
element and batch map operations, and a ring buffer consumer.

libbpf's ABI is versioned and stable (``libbpf.so.1``), so a binding of ~20 functions stays small; there is no
helper process, no protocol and no second binary to ship (see docs/collector.md, "Why ctypes over libbpf").
Every call that fails raises ``BpfError`` with the errno; libbpf 1.x returns ``-errno`` and sets ``errno``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import cache
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


def check(rc: int, what: str) -> int:
    """``rc`` when >= 0, else ``BpfError`` with the errno libbpf returned."""
    if rc < 0:
        err = -rc
        raise BpfError(err, f"{what}: {os.strerror(err)}")
    return rc


def check_ptr(ptr: int | None, what: str) -> int:
    if not ptr:
        err = ctypes.get_errno() or 22
        raise BpfError(err, f"{what}: {os.strerror(err)}")
    return ptr


def possible_cpus() -> int:
    return check(lib().libbpf_num_possible_cpus(), "libbpf_num_possible_cpus")
