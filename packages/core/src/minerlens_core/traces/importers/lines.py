"""The line loop every text importer runs (``LineImporter``, with ``ParserBase`` defaults for its parsers) and
the ``RowSink`` that collects entries into the trace table and keeps malformed lines (``base``: the limits).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from minerlens_core.errors import TraceFormatError
from minerlens_core.syscalls import Arch, syscall_name, syscall_number
from minerlens_core.traces.importers.base import (
    MAX_KEPT_MALFORMED,
    MAX_LINE_CHARS,
    MAX_UNKNOWN_NAMES,
    NS,
    UNEXPECTED_ERRORS,
    Entry,
    ImportOptions,
    ImportResult,
    LineError,
    LineParser,
    Malformed,
    OverlongLine,
    check_entry,
)
from minerlens_core.traces.importers.timestamps import TimeOfDay
from minerlens_core.traces.model import TraceBuilder, TraceMeta

_FLUSH_ROWS = 1 << 18
_TEXT_KEPT = 300


class ParserBase:
    """Defaults for line parsers: no fix-up, no notes, optional time-of-day clock."""

    def __init__(self, options: ImportOptions) -> None:
        self.options = options
        self.clock = TimeOfDay()

    def finish(self, table: pa.Table) -> pa.Table:
        return self.clock.apply(table, self.options)

    def extra(self) -> dict[str, Any]:
        return self.clock.notes(self.options)


class LineImporter:
    """An :class:`Importer` built from a line-parser factory; the loop every text format shares."""

    name: str = ""

    def new_parser(self, arch: Arch, source_name: str, options: ImportOptions) -> LineParser:
        raise NotImplementedError

    def parse(
        self,
        lines: Iterable[str],
        *,
        arch: Arch,
        source_name: str = "",
        options: ImportOptions | None = None,
    ) -> ImportResult:
        opts = options or ImportOptions()
        parser = self.new_parser(arch, source_name, opts)
        sink = RowSink(arch, opts, source_name)
        for line_no, raw in enumerate(lines, 1):
            text = raw.rstrip("\r\n")
            if isinstance(raw, OverlongLine) or len(text) > MAX_LINE_CHARS:
                sink.reject(line_no, text, f"line longer than {MAX_LINE_CHARS} characters")
                continue
            if not text.strip():
                continue
            if "\0" in text:
                sink.reject(line_no, text, "NUL byte in a text line")
                continue
            try:
                entry = parser.feed(text)
                entries = entry if isinstance(entry, list) else [] if entry is None else [entry]
                for one in entries:
                    check_entry(one)
            except LineError as exc:
                sink.reject(line_no, text, exc.reason)
                continue
            except UNEXPECTED_ERRORS as exc:
                sink.reject(line_no, text, f"parser error: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            if not entries:
                sink.skipped += 1
            for one in entries:
                sink.add(one)
        if sink.rows == 0 and sink.skipped == 0:
            raise TraceFormatError(sink.nothing_found(self.name))
        table = parser.finish(sink.table())
        return ImportResult(table, sink.meta(self.name, table, parser.extra()), sink.malformed)


@dataclass
class RowSink:
    """Collects entries column-wise (flushing to Arrow every 256 Ki rows) and malformed lines."""

    arch: Arch
    options: ImportOptions
    source_name: str = ""
    rows: int = 0
    skipped: int = 0
    malformed_count: int = 0
    malformed: list[Malformed] = field(default_factory=list)
    unknown: Counter[str] = field(default_factory=Counter)
    _builder: TraceBuilder | None = None
    _tables: list[pa.Table] = field(default_factory=list)

    def add(self, e: Entry) -> None:
        if self._builder is None:
            self._builder = TraceBuilder(self.arch)
        nr, name = e.nr, e.name
        if nr is None:
            nr = syscall_number(name or "", self.arch)
            name = (name or "").removeprefix("sys_enter_")
            if nr is None:
                known = name in self.unknown or len(self.unknown) < MAX_UNKNOWN_NAMES
                self.unknown[name if known else "(other)"] += 1
        elif name is None:
            name = syscall_name(nr, self.arch)
        o = self.options
        self._builder.add(
            syscall=name,
            nr=nr,
            tid=e.tid,
            pid=e.pid,
            comm=e.comm,
            ts_ns=e.ts_ns,
            pod_uid=e.pod_uid if o.pod_uid is None else o.pod_uid,
            namespace=e.namespace if o.namespace is None else o.namespace,
            pod_name=e.pod_name if o.pod_name is None else o.pod_name,
            container_id=e.container_id if o.container_id is None else o.container_id,
        )
        self.rows += 1
        if len(self._builder) >= _FLUSH_ROWS:
            self._tables.append(self._builder.to_table())
            self._builder = None

    def reject(self, line_no: int, text: str, reason: str) -> None:
        self.malformed_count += 1
        if len(self.malformed) < MAX_KEPT_MALFORMED:
            self.malformed.append(Malformed(line_no, text[:_TEXT_KEPT], reason, self.source_name))

    def table(self) -> pa.Table:
        tables = [*self._tables, (self._builder or TraceBuilder(self.arch)).to_table()]
        return pa.concat_tables(tables).combine_chunks() if len(tables) > 1 else tables[0]

    def nothing_found(self, fmt: str) -> str:
        where = self.source_name or "input"
        if self.malformed_count == 0:
            return f"{where}: empty, no {fmt} syscall entries"
        first = self.malformed[0]
        return (
            f"{where}: no {fmt} syscall entries; all {self.malformed_count} non-blank lines are malformed "
            f"(line {first.line_no}: {first.reason}). Is this really {fmt} output?"
        )

    def meta(self, fmt: str, table: pa.Table, extra: dict[str, Any]) -> TraceMeta:
        notes = dict(extra)
        if self.unknown:
            notes["unknown_syscalls"] = dict(self.unknown.most_common())
        if self.source_name:
            notes["files"] = [self.source_name]
        return TraceMeta(
            source=fmt,
            arch=self.arch,
            malformed_lines=self.malformed_count,
            extra=notes,
            **time_facts(table),
        )


def time_facts(table: pa.Table) -> dict[str, Any]:
    """``has_time`` (every row has a time) and ``seconds`` (span of the rows with time)."""
    ts = table.column("ts_ns")
    known = table.num_rows - ts.null_count
    if known == 0:
        return {"has_time": False, "seconds": None}
    arr = ts.drop_null().to_numpy()
    return {"has_time": known == table.num_rows, "seconds": (int(arr.max()) - int(arr.min())) / NS}
