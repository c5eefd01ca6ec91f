"""The canonical trace file: one Parquet file per capture, one row per syscall entry, in order.

Columns (see ``TRACE_SCHEMA``): ``ts_ns`` (ns since the Unix epoch, null when the source has no time),
pod identity, ``pid``/``tid``/``comm`` of the calling thread, the syscall number ``nr`` (null when
only a name the table does not know was recorded), its ``syscall`` name, the ``arch`` and ``fd_kind``
(``FdKind`` of the fd argument of I/O syscalls; null when the source cannot tell).
File-level facts (label, workload, source, loss) live in ``TraceMeta`` in the Parquet metadata, and the
streams' resource samples (``StreamSample``: cgroup and per-process CPU, memory, fds; see
``minerlens_core.schemas.resources``) under their own metadata key. Format 1 files (no ``fd_kind``, no
samples) are read as format 2 with those missing.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from minerlens_core.errors import TraceFormatError
from minerlens_core.schemas.resources import ResourceSnapshot
from minerlens_core.syscalls import Arch, syscall_name, syscall_number

TRACE_FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
_META_KEY = b"minerlens.trace"
_RESOURCES_KEY = b"minerlens.resources"

TRACE_SCHEMA = pa.schema(
    [
        pa.field("ts_ns", pa.int64(), nullable=True),
        pa.field("pod_uid", pa.string()),
        pa.field("namespace", pa.string()),
        pa.field("pod_name", pa.string()),
        pa.field("container_id", pa.string()),
        pa.field("pid", pa.int32()),
        pa.field("tid", pa.int32()),
        pa.field("comm", pa.string()),
        pa.field("nr", pa.int32(), nullable=True),
        pa.field("syscall", pa.string()),
        pa.field("arch", pa.string()),
        pa.field("fd_kind", pa.int8(), nullable=True),
    ]
)

Label = Literal["miner", "benign", "unknown"]


class TraceMeta(BaseModel):
    """What a trace file is: its origin, label and how complete it is."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = TRACE_FORMAT_VERSION
    source: str = Field(description="tracefs, strace, perf, sysdig, tetragon, names, ...")
    label: Label = "unknown"
    workload: str = ""
    family: str = ""
    variant: str = ""
    node: str = ""
    arch: Arch = Arch.X86_64
    has_time: bool = True
    seconds: float | None = None
    lost_events: int = Field(default=0, ge=0)
    malformed_lines: int = Field(default=0, ge=0)
    command: list[str] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)


class StreamSample(BaseModel):
    """A resource snapshot of one (pod, container) stream of the trace."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pod_uid: str = Field(max_length=64)
    container_id: str = Field(default="", max_length=128)
    sample: ResourceSnapshot


_SAMPLES = TypeAdapter(list[StreamSample])


@dataclass
class Trace:
    table: pa.Table
    meta: TraceMeta
    resources: list[StreamSample] = field(default_factory=list)
    """resource samples of the trace's streams, in time order per stream (empty: none recorded)"""

    def __len__(self) -> int:
        return int(self.table.num_rows)

    @property
    def syscalls(self) -> list[str]:
        return [str(x) for x in self.table.column("syscall").to_pylist()]


@dataclass
class TraceBuilder:
    """Accumulates syscall rows (column-wise) and produces a table in ``TRACE_SCHEMA``."""

    arch: Arch
    cols: dict[str, list[Any]] = field(default_factory=lambda: {f.name: [] for f in TRACE_SCHEMA})

    def add(
        self,
        *,
        syscall: str | None = None,
        nr: int | None = None,
        tid: int = 0,
        pid: int | None = None,
        comm: str = "",
        ts_ns: int | None = None,
        pod_uid: str = "",
        namespace: str = "",
        pod_name: str = "",
        container_id: str = "",
        fd_kind: int | None = None,
    ) -> None:
        """Add one syscall entry, given by number, by name, or both (they are completed each other)."""
        if nr is None and syscall is None:
            msg = "a syscall needs a number or a name"
            raise ValueError(msg)
        if nr is None:
            nr = syscall_number(syscall or "", self.arch)
            syscall = (syscall or "").removeprefix("sys_enter_")
        elif syscall is None:
            syscall = syscall_name(nr, self.arch)
        c = self.cols
        c["ts_ns"].append(ts_ns)
        c["pod_uid"].append(pod_uid)
        c["namespace"].append(namespace)
        c["pod_name"].append(pod_name)
        c["container_id"].append(container_id)
        c["pid"].append(tid if pid is None else pid)
        c["tid"].append(tid)
        c["comm"].append(comm)
        c["nr"].append(nr)
        c["syscall"].append(syscall)
        c["arch"].append(self.arch.value)
        c["fd_kind"].append(fd_kind)

    def __len__(self) -> int:
        return len(self.cols["syscall"])

    def to_table(self) -> pa.Table:
        return pa.Table.from_pydict(self.cols, schema=TRACE_SCHEMA)


def conform(table: pa.Table) -> pa.Table:
    """``table`` in ``TRACE_SCHEMA``; a missing ``fd_kind`` column (format 1, importers) becomes nulls."""
    if "fd_kind" not in table.schema.names:
        table = table.append_column("fd_kind", pa.nulls(table.num_rows, pa.int8()))
    if table.schema.remove_metadata() != TRACE_SCHEMA:
        table = table.select(TRACE_SCHEMA.names).cast(TRACE_SCHEMA)
    return table


def write_trace(
    path: str | Path, table: pa.Table, meta: TraceMeta, resources: list[StreamSample] | None = None
) -> Path:
    """Write a trace atomically (temp file + rename) with zstd compression."""
    path = Path(path)
    table = conform(table)
    md = {_META_KEY: meta.model_copy(update={"format_version": TRACE_FORMAT_VERSION}).model_dump_json().encode()}
    if resources:
        md[_RESOURCES_KEY] = _SAMPLES.dump_json(resources, exclude_defaults=True)
    table = table.replace_schema_metadata(md)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


MAX_TRACE_ROWS = 1 << 28
"""Rows a trace file may claim (268 M syscalls); a footer claiming more is refused before anything is read."""


def _check_footer(path: Path) -> None:
    """Refuse a footer whose row counts are absurd or disagree, before Arrow allocates for them: a fuzzed
    row group of 1.2e12 rows made ``read_table`` allocate 20 GB. Only file and row-group counts are read:
    pyarrow 26 aborts the process (an uncaught C++ exception) on some corrupt column-chunk metadata."""
    md = pq.ParquetFile(path).metadata
    rows = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
    if not 0 <= md.num_rows <= MAX_TRACE_ROWS or sum(rows) != md.num_rows or min(rows, default=0) < 0:
        msg = f"{path}: corrupt or oversized Parquet footer: {md.num_rows} rows, row groups of {rows[:4]} rows"
        raise TraceFormatError(msg)


def read_trace(path: str | Path) -> Trace:
    """Read a trace file written by ``write_trace``; a clear ``TraceFormatError`` otherwise."""
    path = Path(path)
    try:
        _check_footer(path)
        table = pq.read_table(path)
    except FileNotFoundError:
        msg = f"{path}: no such trace file"
        raise TraceFormatError(msg) from None
    except (pa.ArrowException, OSError, ValueError) as exc:  # any Arrow error, bad UTF-8 in the footer
        msg = f"{path}: not a minerlens trace (Parquet) file: {str(exc)[:500]}"
        raise TraceFormatError(msg) from None
    raw = (table.schema.metadata or {}).get(_META_KEY)
    if raw is None:
        msg = f"{path}: Parquet file without minerlens trace metadata"
        raise TraceFormatError(msg)
    try:
        meta = TraceMeta.model_validate(json.loads(raw))
        resources = _SAMPLES.validate_json(table.schema.metadata.get(_RESOURCES_KEY) or b"[]")
        meta.model_dump_json()  # metadata too deeply nested to be written again is refused here
    except (ValueError, ValidationError, RecursionError) as exc:
        msg = f"{path}: bad minerlens trace metadata: {str(exc)[:500]}"
        raise TraceFormatError(msg) from None
    if meta.format_version not in READABLE_FORMATS:
        msg = f"{path}: trace format v{meta.format_version}, this minerlens reads v{READABLE_FORMATS}"
        raise TraceFormatError(msg)
    try:
        missing = set(TRACE_SCHEMA.names) - set(table.schema.names) - {"fd_kind"}
    except ValueError:  # a column name that is not UTF-8
        missing = set(TRACE_SCHEMA.names)
    if missing:
        msg = f"{path}: trace lacks columns {sorted(missing)}"
        raise TraceFormatError(msg)
    try:
        table = conform(table)
        table.validate(full=True)  # e.g. strings that are not UTF-8 fail here, not in a consumer
    except (pa.ArrowException, ValueError) as exc:
        msg = f"{path}: columns of the wrong type or invalid values: {str(exc)[:500]}"
        raise TraceFormatError(msg) from None
    return Trace(table=table, meta=meta, resources=resources)
