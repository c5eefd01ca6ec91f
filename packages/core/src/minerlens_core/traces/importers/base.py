"""What every importer shares: options, results, the line loop, the row sink and time helpers.

An importer turns the text output of a tracing tool into the canonical trace table
(``TRACE_SCHEMA``). Text formats are read line by line (files may be hundreds of MB): a
per-stream *line parser* classifies each line as a syscall entry (:class:`Entry`), a recognised
line that is not a syscall entry (``None``: exits, signals, other events, comments) or a
malformed line (:class:`LineError`). :class:`LineImporter` runs that loop for every format.

Malformed lines never stop an import: they are counted in ``TraceMeta.malformed_lines`` and the
first :data:`MAX_KEPT_MALFORMED` of each input are kept (1-based line number, text, reason). An
input that yields no syscall entry and no recognised line at all (empty, garbage, binary) is not
a trace of that format: :class:`TraceFormatError`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np
import pyarrow as pa

from minerlens_core.errors import TraceFormatError
from minerlens_core.syscalls import Arch, syscall_name, syscall_number
from minerlens_core.traces.model import TraceBuilder, TraceMeta

MAX_KEPT_MALFORMED = 1000
"""Malformed lines kept (with text and reason) per input; all of them are counted."""

_FLUSH_ROWS = 1 << 18
_TEXT_KEPT = 300
NS = 1_000_000_000
DAY_NS = 86_400 * NS


@dataclass(frozen=True, slots=True)
class Malformed:
    """A line that is not valid in the format: where (1-based line of ``source``), what and why."""

    line_no: int
    text: str
    reason: str
    source: str = ""


@dataclass
class ImportResult:
    table: pa.Table
    meta: TraceMeta
    malformed: list[Malformed]


@dataclass(frozen=True)
class ImportOptions:
    """Facts the input lacks, given by the caller. ``None`` means "keep what the input says".

    * ``pod_uid``/``namespace``/``pod_name``/``container_id`` replace the per-row values.
    * ``date``: calendar date of the FIRST time-of-day stamp (strace ``-t``/``-tt``, sysdig
      ``HH:MM:SS.ns``); ``end_date``: date of the LAST one, used when ``date`` is None
      (``import_files`` fills it from the file's modification time). Time-of-day stamps that go
      back by more than 12 h are taken as a midnight rollover. Without either date, such stamps
      are dropped (``ts_ns`` null).
    * ``tz``: zone of time-of-day stamps (strace and sysdig print local time); None = the local
      zone of this machine, i.e. the capture is assumed to come from a host in the same zone.
    * ``epoch_offset_ns``: added to perf's monotonic stamps to make Unix-epoch ns (0 when perf
      recorded with ``-k realtime``); None keeps ``ts_ns`` null for perf.
    * ``default_tid``: thread id of lines that name none (the names format, strace output of a
      single process without pid prefix).
    """

    pod_uid: str | None = None
    namespace: str | None = None
    pod_name: str | None = None
    container_id: str | None = None
    date: dt.date | None = None
    end_date: dt.date | None = None
    tz: dt.tzinfo | None = None
    epoch_offset_ns: int | None = None
    default_tid: int | None = None


class Entry(NamedTuple):
    """One syscall entry as a line parser sees it (``nr`` or ``name``, or both)."""

    tid: int
    nr: int | None = None
    name: str | None = None
    ts_ns: int | None = None
    pid: int | None = None
    comm: str = ""
    pod_uid: str = ""
    namespace: str = ""
    pod_name: str = ""
    container_id: str = ""


class LineError(ValueError):
    """The line is malformed; ``reason`` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LineParser(Protocol):
    """Stateful parser of one input stream (one file)."""

    def feed(self, text: str) -> Entry | list[Entry] | None:
        """The syscall entry (or entries) on this line, None for a recognised non-entry line.

        Raises :class:`LineError` if the line is malformed.
        """
        ...

    def finish(self, table: pa.Table) -> pa.Table:
        """Fix-ups that need the whole stream (dates of time-of-day stamps, thread ids)."""
        ...

    def extra(self) -> dict[str, Any]:
        """Notes for ``TraceMeta.extra`` (assumptions made, unknown names, ...)."""
        ...


class Importer(Protocol):
    """A trace format: ``name`` and a streaming ``parse`` of its lines."""

    name: str

    def parse(
        self,
        lines: Iterable[str],
        *,
        arch: Arch,
        source_name: str = "",
        options: ImportOptions | None = None,
    ) -> ImportResult: ...


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
            if not text.strip():
                continue
            try:
                entry = parser.feed(text)
            except LineError as exc:
                sink.reject(line_no, text, exc.reason)
                continue
            if entry is None or (isinstance(entry, list) and not entry):
                sink.skipped += 1
            elif isinstance(entry, list):
                for one in entry:
                    sink.add(one)
            else:
                sink.add(entry)
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
                self.unknown[name] += 1
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
    return {"has_time": known == table.num_rows, "seconds": float(arr.max() - arr.min()) / NS}


def decimal_ns(text: str) -> int:
    """``"1795762664.928514"`` (seconds with up to 9 decimals) -> ns, exactly (no float rounding)."""
    sec, _, frac = text.partition(".")
    if len(frac) > 9:
        frac = frac[:9]
    return int(sec) * NS + int(frac.ljust(9, "0") or "0")


_TOD = re.compile(r"^(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?$")


class TimeOfDay:
    """Time-of-day stamps (``HH:MM:SS[.frac]``) -> ns from midnight of the first stamp's day.

    A stamp more than 12 h before the previous one is a midnight rollover. ``apply`` adds the
    epoch of that midnight once the whole stream is read (see :class:`ImportOptions`).
    """

    def __init__(self) -> None:
        self.days = 0
        self.used = False
        self._last: int | None = None

    def ns(self, text: str) -> int:
        m = _TOD.match(text)
        if m is None:
            msg = f"bad time of day {text!r}"
            raise LineError(msg)
        h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if h > 23 or mi > 59 or s > 60:
            msg = f"bad time of day {text!r}"
            raise LineError(msg)
        value = ((h * 60 + mi) * 60 + s) * NS + int((m.group(4) or "").ljust(9, "0"))
        if self._last is not None and value + self.days * DAY_NS < self._last - DAY_NS // 2:
            self.days += 1
        out = value + self.days * DAY_NS
        self._last = out
        self.used = True
        return out

    def first_date(self, options: ImportOptions) -> dt.date | None:
        if options.date is not None:
            return options.date
        if options.end_date is not None:
            return options.end_date - dt.timedelta(days=self.days)
        return None

    def apply(self, table: pa.Table, options: ImportOptions) -> pa.Table:
        if not self.used or table.num_rows == 0:
            return table
        day = self.first_date(options)
        idx = table.schema.get_field_index("ts_ns")
        if day is None:
            return table.set_column(idx, "ts_ns", pa.nulls(table.num_rows, pa.int64()))
        base = midnight_ns(day, options.tz)
        col = table.column(idx).to_numpy(zero_copy_only=False)
        return table.set_column(idx, "ts_ns", pa.array(np.asarray(col, dtype=np.int64) + base, pa.int64()))

    def notes(self, options: ImportOptions) -> dict[str, Any]:
        """Which calendar date and zone the time-of-day stamps were given (for ``TraceMeta.extra``)."""
        if not self.used:
            return {}
        day = self.first_date(options)
        if day is None:
            return {"time_of_day": "no date given: ts_ns dropped (pass date=)"}
        origin = "given" if options.date is not None else "file modification time"
        zone = str(options.tz) if options.tz is not None else "local zone of the importing machine"
        return {"time_of_day": f"{day.isoformat()} ({origin}), {zone}", "midnight_rollovers": self.days}


def midnight_ns(day: dt.date, tz: dt.tzinfo | None) -> int:
    """Unix-epoch ns of 00:00 of ``day`` in ``tz`` (None: this machine's local zone)."""
    naive = dt.datetime(day.year, day.month, day.day)  # noqa: DTZ001 - zone applied just below
    aware = naive.replace(tzinfo=tz) if tz is not None else naive.astimezone()
    return int(aware.timestamp()) * NS


def strip_runtime(container_id: str) -> str:
    """``containerd://<id>`` (or ``cri-o://``, ``docker://``) -> ``<id>``."""
    return container_id.rpartition("://")[2]
