"""The canonical trace file: one Parquet file per capture, one row per syscall entry, in order.

Columns (see ``TRACE_SCHEMA``): ``ts_ns`` (ns since the Unix epoch, null when the source has no time),
pod identity, ``pid``/``tid``/``comm`` of the calling thread, the syscall number ``nr`` (null when
only a name the table does not know was recorded), its ``syscall`` name and the ``arch``.
File-level facts (label, workload, source, loss) live in ``TraceMeta`` in the Parquet metadata.
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
from pydantic import BaseModel, ConfigDict, Field

from minerlens_core.errors import TraceFormatError
from minerlens_core.syscalls import Arch, syscall_name, syscall_number

TRACE_FORMAT_VERSION = 1
_META_KEY = b"minerlens.trace"

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


@dataclass
class Trace:
    table: pa.Table
    meta: TraceMeta

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

    def __len__(self) -> int:
        return len(self.cols["syscall"])

    def to_table(self) -> pa.Table:
        return pa.Table.from_pydict(self.cols, schema=TRACE_SCHEMA)


def write_trace(path: str | Path, table: pa.Table, meta: TraceMeta) -> Path:
    """Write a trace atomically (temp file + rename) with zstd compression."""
    path = Path(path)
    if table.schema.remove_metadata() != TRACE_SCHEMA:
        table = table.select(TRACE_SCHEMA.names).cast(TRACE_SCHEMA)
    table = table.replace_schema_metadata({_META_KEY: meta.model_dump_json().encode()})
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


def read_trace(path: str | Path) -> Trace:
    """Read a trace file written by ``write_trace``; a clear ``TraceFormatError`` otherwise."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        msg = f"{path}: no such trace file"
        raise TraceFormatError(msg) from None
    except (pa.ArrowInvalid, OSError) as exc:
        msg = f"{path}: not a minerlens trace (Parquet) file: {exc}"
        raise TraceFormatError(msg) from None
    raw = (table.schema.metadata or {}).get(_META_KEY)
    if raw is None:
        msg = f"{path}: Parquet file without minerlens trace metadata"
        raise TraceFormatError(msg)
    meta = TraceMeta.model_validate(json.loads(raw))
    if meta.format_version != TRACE_FORMAT_VERSION:
        msg = f"{path}: trace format v{meta.format_version}, this minerlens reads v{TRACE_FORMAT_VERSION}"
        raise TraceFormatError(msg)
    missing = set(TRACE_SCHEMA.names) - set(table.schema.names)
    if missing:
        msg = f"{path}: trace lacks columns {sorted(missing)}"
        raise TraceFormatError(msg)
    return Trace(table=table.select(TRACE_SCHEMA.names).cast(TRACE_SCHEMA), meta=meta)
