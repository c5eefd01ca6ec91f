"""The dataset manifest: what each run of the lab produced, and a check that it matches the files.

``DIR/manifest.json`` is the ``Manifest`` model; ``DIR/manifest.csv`` has one flat row per run.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from minerlens_core.digests import sha256_file
from minerlens_core.errors import TraceFormatError
from minerlens_core.traces import read_trace

MANIFEST_VERSION = 1
MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"
TRACES_DIR = "traces"
TOP_N = 5

Status = Literal["ok", "failed", "skipped"]


class SyscallCount(BaseModel):
    syscall: str
    count: int


class RunRecord(BaseModel):
    """One workload x repeat."""

    model_config = ConfigDict(extra="forbid")

    workload: str
    family: str
    label: str
    variant: str = ""
    implementation: str = ""
    """for miners, the miner implementation (``xmrig-6.16.0``, ``minerlens-c``...); empty for benign runs"""
    repeat: int = Field(ge=1)
    status: Status
    error: str = ""
    started_at: datetime | None = None
    seconds: float = 0.0
    """how long the capture ran (stops early when the pod's program exits)"""
    syscalls: int = 0
    lost_events: int = 0
    syscalls_per_s: float = 0.0
    cpu_seconds: float | None = None
    """CPU time the pod used during the capture"""
    cpu_cores: float | None = None
    """cpu_seconds / seconds: the average number of cores the pod kept busy"""
    cpu_share: float | None = None
    """cpu_cores / the machine's cores"""
    exit_code: int | None = None
    """the pod program's exit status; None when it was still running at the end (and was killed)"""
    top_syscalls: list[SyscallCount] = Field(default_factory=list)
    facts: dict[str, Any] = Field(default_factory=dict)
    command: list[str] = Field(default_factory=list)
    file: str | None = None
    """the trace, relative to the dataset directory (``traces/<workload>-r<k>.parquet``)"""
    sha256: str | None = None


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manifest_version: int = MANIFEST_VERSION
    created_at: datetime
    finished_at: datetime | None = None
    interrupted: bool = False
    minerlens_version: str
    machine: dict[str, Any] = Field(default_factory=dict)
    """kernel (uname -r), arch, node, cpus, os"""
    tool_versions: dict[str, str] = Field(default_factory=dict)
    python_versions: dict[str, str] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    """seconds, repeat, threads, selection pattern, capture source"""
    runs: list[RunRecord] = Field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {"ok": 0, "failed": 0, "skipped": 0}
        for r in self.runs:
            out[r.status] += 1
        return out


def top_syscalls(per_syscall: dict[str, int], n: int = TOP_N) -> list[SyscallCount]:
    """The ``n`` most frequent syscalls, ties broken by name (so the list is reproducible)."""
    ranked = sorted(per_syscall.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [SyscallCount(syscall=name, count=count) for name, count in ranked]


def trace_name(workload: str, repeat: int) -> str:
    return f"{TRACES_DIR}/{workload}-r{repeat}.parquet"


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


CSV_COLUMNS = [
    "workload",
    "family",
    "label",
    "variant",
    "implementation",
    "repeat",
    "status",
    "error",
    "started_at",
    "seconds",
    "syscalls",
    "lost_events",
    "syscalls_per_s",
    "cpu_seconds",
    "cpu_cores",
    "cpu_share",
    "exit_code",
    "top_syscalls",
    "facts",
    "file",
    "sha256",
]


def _csv_row(r: RunRecord) -> dict[str, Any]:
    row = r.model_dump(mode="json", exclude={"command"})
    row["top_syscalls"] = ";".join(f"{t.syscall}={t.count}" for t in r.top_syscalls)
    row["facts"] = json.dumps(r.facts, sort_keys=True)
    return {k: ("" if row.get(k) is None else row[k]) for k in CSV_COLUMNS}


def write_manifest(out: Path, manifest: Manifest) -> None:
    """Write ``manifest.json`` and ``manifest.csv`` (atomically; called after every run)."""
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / MANIFEST_JSON, manifest.model_dump_json(indent=2) + "\n")
    with tempfile.SpooledTemporaryFile(mode="w+", newline="") as buf:
        w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for r in manifest.runs:
            w.writerow(_csv_row(r))
        buf.seek(0)
        _atomic_write(out / MANIFEST_CSV, buf.read())


def load_manifest(directory: Path) -> Manifest:
    return Manifest.model_validate_json((directory / MANIFEST_JSON).read_text())


def verify(directory: Path) -> list[str]:
    """Check that the manifest's numbers match the trace files: existence, sha256, row counts, labels,
    losses, top syscalls, and that no trace file is unaccounted for. Returns the problems (none = ok)."""
    directory = Path(directory)
    try:
        manifest = load_manifest(directory)
    except (OSError, ValueError) as exc:
        return [f"{directory / MANIFEST_JSON}: unreadable manifest: {exc}"]
    problems: list[str] = []
    listed: set[str] = set()
    seen: set[tuple[str, int]] = set()
    for r in manifest.runs:
        problems += _verify_run(directory, r)
        if (r.workload, r.repeat) in seen:
            problems.append(f"{r.workload} r{r.repeat}: listed more than once")
        seen.add((r.workload, r.repeat))
        if r.file:
            listed.add(r.file)
    problems += [f"{name}: trace file not in the manifest" for name in sorted(trace_files(directory) - listed)]
    return problems


def trace_files(directory: Path) -> set[str]:
    """The trace files present in a dataset directory, as manifest ``file`` values."""
    traces = Path(directory) / TRACES_DIR
    return {f"{TRACES_DIR}/{p.name}" for p in traces.glob("*.parquet")} if traces.is_dir() else set()


def reusable_runs(directory: Path) -> tuple[Manifest | None, list[RunRecord]]:
    """For resuming a dataset: its manifest (None when there is none, or it is unreadable) and the ok runs
    whose trace file verifies (each workload x repeat once)."""
    try:
        manifest = load_manifest(Path(directory))
    except (OSError, ValueError):
        return None, []
    kept: dict[tuple[str, int], RunRecord] = {}
    for r in manifest.runs:
        if r.status == "ok" and (r.workload, r.repeat) not in kept and not _verify_run(Path(directory), r):
            kept[(r.workload, r.repeat)] = r
    return manifest, list(kept.values())


def _verify_run(directory: Path, r: RunRecord) -> list[str]:
    who = f"{r.workload} r{r.repeat}"
    if r.status != "ok":
        return [f"{who}: status {r.status} but a trace file is listed"] if r.file else []
    if not r.file or not r.sha256:
        return [f"{who}: ok but no trace file / sha256"]
    path = directory / r.file
    if not path.is_file():
        return [f"{who}: {r.file} is missing"]
    problems: list[str] = []
    if sha256_file(path) != r.sha256:
        problems.append(f"{who}: sha256 of {r.file} does not match")
    try:
        trace = read_trace(path)
    except TraceFormatError as exc:
        return [*problems, f"{who}: {exc}"]
    meta, table = trace.meta, trace.table
    if table.num_rows != r.syscalls:
        problems.append(f"{who}: manifest says {r.syscalls} syscalls, file has {table.num_rows}")
    expect = {"label": r.label, "workload": r.workload, "family": r.family, "variant": r.variant}
    for key, value in expect.items():
        if getattr(meta, key) != value:
            problems.append(f"{who}: trace {key} is {getattr(meta, key)!r}, manifest says {value!r}")
    if meta.lost_events != r.lost_events:
        problems.append(f"{who}: trace lost_events {meta.lost_events}, manifest {r.lost_events}")
    if meta.seconds is not None and not math.isclose(meta.seconds, r.seconds, abs_tol=0.01):
        problems.append(f"{who}: trace seconds {meta.seconds}, manifest {r.seconds}")
    counts = {c["values"]: c["counts"] for c in table.column("syscall").value_counts().to_pylist()}
    top = top_syscalls(counts)
    if r.top_syscalls != top:
        problems.append(f"{who}: top syscalls {[(t.syscall, t.count) for t in top]} differ from the manifest's")
    return problems
