"""A tiny labelled lab dataset written through the real code paths (TraceBuilder, write_trace, the lab
manifest), for tests that must not depend on a captured dataset.

Two benign families (a web-like epoll server, a batch job) and two miner families (futex-spinning and
sched_yield-spinning hash workers), two runs each, plus a quiet miner run too short for one window and a
noise-injected miner (getpid/nanosleep make half of its calls).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from minerlens_core.datasets.manifest import Manifest, RunRecord, top_syscalls, trace_name, write_manifest
from minerlens_core.digests import sha256_file
from minerlens_core.syscalls import Arch
from minerlens_core.traces import TraceBuilder, TraceMeta, write_trace
from minerlens_core.traces.model import Label

_PROFILES: dict[str, dict[str, float]] = {
    "web": {"epoll_wait": 3, "read": 3, "write": 2, "openat": 1, "close": 1, "sendfile": 1, "futex": 0.5},
    "batch": {"read": 4, "write": 3, "lseek": 1, "fstat": 1, "mmap": 1, "munmap": 1, "futex": 0.5, "brk": 1},
    "spin": {"futex": 8, "sched_yield": 1, "mmap": 0.3, "write": 0.3, "poll": 0.3},
    "yield": {"sched_yield": 8, "futex": 1, "mmap": 0.3, "write": 0.3, "poll": 0.3},
}
_NOISE: dict[str, float] = {"getpid": 1.0, "nanosleep": 1.0}

# (workload, family, label, variant, profile, syscalls, noise share)
RUNS: list[tuple[str, str, Label, str, str, int, float]] = [
    ("web-a", "web", "benign", "a", "web", 12000, 0.0),
    ("web-b", "web", "benign", "b", "web", 12000, 0.0),
    ("batch-a", "batch", "benign", "a", "batch", 12000, 0.0),
    ("batch-b", "batch", "benign", "b", "batch", 12000, 0.0),
    ("miner-spin-1t", "miner-spin", "miner", "1t", "spin", 5000, 0.0),
    ("miner-spin-noise-50", "miner-spin", "miner", "noise-50", "spin", 5000, 0.5),
    ("miner-yield-1t", "miner-yield", "miner", "1t", "yield", 5000, 0.0),
    ("miner-yield-2t", "miner-yield", "miner", "2t", "yield", 5000, 0.0),
    ("miner-yield-quiet", "miner-yield", "miner", "quiet", "yield", 300, 0.0),
]


@dataclass(frozen=True)
class SynthRun:
    """One run of a synthetic lab dataset (``write_lab``)."""

    workload: str
    family: str
    label: Label
    variant: str
    profile: str
    syscalls: int
    noise: float = 0.0
    implementation: str | None = None
    """written to the manifest when not None (None: an older manifest without the field)"""
    facts: dict[str, Any] = field(default_factory=dict)
    comm: str = "worker"
    """the comm of every syscall's process"""
    mean_gap_ns: float = 0.0
    """mean time between syscalls (0: 20 us for benign, 200 us for miners)"""


def _draw(rng: np.random.Generator, profile: dict[str, float], n: int) -> list[str]:
    names = list(profile)
    p = np.array([profile[k] for k in names], dtype=np.float64)
    return [names[i] for i in rng.choice(len(names), size=n, p=p / p.sum())]


def write_synthetic_dataset(out: Path, seed: int = 0) -> Path:
    return write_lab(out, [SynthRun(*r) for r in RUNS], seed)


def write_lab(out: Path, runs: list[SynthRun], seed: int = 0) -> Path:
    """Write ``runs`` as traces (TraceBuilder, write_trace) and a lab manifest into ``out``."""
    rng = np.random.default_rng(seed)
    records: list[RunRecord] = []
    t0 = 1_700_000_000_000_000_000
    for k, run in enumerate(runs):
        workload, family, label, variant, profile, n, noise = (
            run.workload,
            run.family,
            run.label,
            run.variant,
            run.profile,
            run.syscalls,
            run.noise,
        )
        calls = _draw(rng, _PROFILES[profile], n)
        if noise:
            extra = _draw(rng, _NOISE, int(n * noise / (1 - noise)))
            pos = np.sort(rng.choice(len(calls) + len(extra), size=len(extra), replace=False))
            it_c, it_e = iter(calls), iter(extra)
            taken = set(pos.tolist())
            merged = [next(it_e) if i in taken else next(it_c) for i in range(len(calls) + len(extra))]
            calls = merged
        b = TraceBuilder(Arch.X86_64)
        gap = run.mean_gap_ns or (20_000 if label == "benign" else 200_000)
        ts = t0 + np.cumsum(rng.exponential(gap, size=len(calls))).astype(np.int64)
        tids = rng.integers(100, 104 if label == "benign" else 102, size=len(calls))
        pod = f"pod-{k}"
        for name, t, tid in zip(calls, ts.tolist(), tids.tolist(), strict=True):
            b.add(
                syscall=name,
                tid=tid,
                pid=100,
                comm=run.comm,
                ts_ns=t,
                pod_uid=pod,
                namespace="lab",
                pod_name=f"{workload}-r1",
            )
        file = trace_name(workload, 1)
        seconds = float((ts[-1] - ts[0]) / 1e9)
        meta = TraceMeta(
            source="synthetic", label=label, workload=workload, family=family, variant=variant, seconds=seconds
        )
        write_trace(out / file, b.to_table(), meta)
        impl_field: dict[str, Any] = {} if run.implementation is None else {"implementation": run.implementation}
        records.append(
            RunRecord(
                **impl_field,
                facts=dict(run.facts),
                workload=workload,
                family=family,
                label=label,
                variant=variant,
                repeat=1,
                status="ok",
                seconds=seconds,
                syscalls=len(calls),
                file=file,
                sha256=sha256_file(out / file),
                top_syscalls=top_syscalls(dict(Counter(calls))),
            )
        )
    manifest = Manifest(
        created_at=datetime.now(UTC), finished_at=datetime.now(UTC), minerlens_version="test", runs=records
    )
    write_manifest(out, manifest)
    return out
