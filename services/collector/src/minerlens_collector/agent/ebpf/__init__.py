"""In-kernel syscall aggregation (eBPF, ``services/collector/bpf``), loaded through libbpf with ctypes.

``probe()`` says whether this host can run it, and why not; ``EbpfSource`` is the collector's source.
"""

from __future__ import annotations

import os
from pathlib import Path

from minerlens_collector.agent.ebpf.cgroup_ids import stream_cgroup_ids, v2_root
from minerlens_collector.agent.ebpf.libbpf import BpfError
from minerlens_collector.agent.ebpf.program import DEFAULT_OBJECT, BpfProgram, Collected
from minerlens_collector.agent.ebpf.source import AggregateWindow, EbpfSource

BTF = Path("/sys/kernel/btf/vmlinux")


def probe(cgroup_root: Path = Path("/sys/fs/cgroup"), obj: Path = DEFAULT_OBJECT) -> str | None:
    """``None`` when the eBPF source can run here, else the reason it cannot (loads and unloads the program)."""
    if not BTF.exists():
        return f"the kernel has no BTF ({BTF}); CO-RE programs cannot be loaded"
    if v2_root(cgroup_root) is None:
        return f"no cgroup2 hierarchy under {cgroup_root}: the filter uses cgroup v2 ids"
    if not obj.is_file():
        return f"BPF object {obj} is not built (make -C services/collector/bpf; needs clang and bpftool)"
    prog = BpfProgram(obj, sample_budget=0)
    try:
        prog.open()
    except BpfError as e:  # an EPERM names the missing capabilities (libbpf.permission_hint)
        return f"the kernel refused the program (uid {os.geteuid()}): {e}"
    finally:
        prog.close()
    return None


__all__ = [
    "AggregateWindow",
    "BpfError",
    "BpfProgram",
    "Collected",
    "EbpfSource",
    "probe",
    "stream_cgroup_ids",
    "v2_root",
]
