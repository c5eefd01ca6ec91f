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

Limits (hostile input is expected; none of these ends in a traceback):

* a line longer than :data:`MAX_LINE_CHARS` characters, or holding a NUL byte, is malformed (it is
  read in bounded pieces, never whole);
* every value an entry carries must fit the trace columns: ``tid``/``pid``/``nr`` in int32 (``nr`` not
  negative), ``ts_ns`` in ``0 .. 2**63-1`` (1970 .. 2262), ``comm`` and syscall names at most
  :data:`MAX_NAME_CHARS` characters, pod identity (uid, namespace, name, container id) as the message
  contract allows (``minerlens_core.schemas.bounds``); a number is read only if it has at most
  :data:`MAX_DIGITS` digits. A line that breaks one of these is malformed, with the reason;
* time-of-day stamps may roll over midnight at most :data:`MAX_ROLLOVERS` times;
* distinct unknown syscall names are counted individually up to :data:`MAX_UNKNOWN_NAMES`, the rest
  under ``"(other)"``;
* JSON (Tetragon) nested deeper than Python's parser allows is a malformed line.

A line that trips an error no parser anticipated is still only malformed ("parser error: ...").
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from minerlens_core.errors import TraceFormatError
from minerlens_core.schemas.bounds import INT32_MAX, INT32_MIN, INT64_MAX
from minerlens_core.syscalls import Arch, syscall_name, syscall_number
from minerlens_core.traces.importers.identity import check_identity
from minerlens_core.traces.model import TraceBuilder, TraceMeta

MAX_KEPT_MALFORMED = 1000
"""Malformed lines kept (with text and reason) per input; all of them are counted."""
MAX_LINE_CHARS = 1 << 16
"""Longest line an importer reads (64 Ki characters); longer lines are malformed."""
MAX_NAME_CHARS = 256
"""Longest ``comm`` or syscall name accepted in an entry."""
MAX_DIGITS = 20
"""Longest decimal number read from a line (int64 has 19 digits)."""
MAX_ROLLOVERS = 3660
"""Midnight rollovers of time-of-day stamps (ten years of days) before stamps count as malformed."""
MAX_UNKNOWN_NAMES = 1000
"""Distinct unknown syscall names counted one by one in ``meta.extra["unknown_syscalls"]``."""

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


class OverlongLine(str):
    """The first characters of a line longer than the reader's limit (the rest was skipped unread)."""

    __slots__ = ()


_UNEXPECTED = (ValueError, ArithmeticError, LookupError, TypeError, RecursionError, AttributeError)
"""Errors a parser did not anticipate: its line is malformed ("parser error"), the import goes on."""


def parse_int(text: str, what: str, lo: int = INT32_MIN, hi: int = INT32_MAX) -> int:
    """``int(text)`` within ``lo..hi``, else :class:`LineError` (never a huge or slow conversion)."""
    digits = text.lstrip("+-")
    if not digits or len(digits) > MAX_DIGITS:
        msg = f"{what} {text[:24]!r} is not a number in range"
        raise LineError(msg)
    try:
        value = int(text, 0) if digits[:2].lower() == "0x" else int(text)
    except ValueError:
        msg = f"{what} {text[:24]!r} is not a number"
        raise LineError(msg) from None
    if not lo <= value <= hi:
        msg = f"{what} {value} out of range {lo}..{hi}"
        raise LineError(msg)
    return value


def check_entry(e: Entry) -> None:
    """Raise :class:`LineError` unless every value of ``e`` fits the trace columns (module docstring)."""
    if not INT32_MIN <= e.tid <= INT32_MAX:
        msg = f"tid {e.tid} out of the int32 range"
        raise LineError(msg)
    if e.pid is not None and not INT32_MIN <= e.pid <= INT32_MAX:
        msg = f"pid {e.pid} out of the int32 range"
        raise LineError(msg)
    if e.nr is not None and not 0 <= e.nr <= INT32_MAX:
        msg = f"syscall number {e.nr} out of range 0..{INT32_MAX}"
        raise LineError(msg)
    if e.ts_ns is not None and not 0 <= e.ts_ns <= INT64_MAX:
        msg = f"time {e.ts_ns} ns out of range (1970 .. 2262)"
        raise LineError(msg)
    if len(e.comm) > MAX_NAME_CHARS or (e.name is not None and len(e.name) > MAX_NAME_CHARS):
        msg = f"command or syscall name longer than {MAX_NAME_CHARS} characters"
        raise LineError(msg)
    if e.name is not None:
        if not e.name.isascii():
            msg = f"syscall name {e.name[:40]!r} is not ASCII"
            raise LineError(msg)
        bare = e.name.removeprefix("sys_enter_").removeprefix("sys_")
        if e.nr is None and bare.isdigit() and int(bare) > INT32_MAX:  # sys_<nr> names a number
            msg = f"syscall number {bare[:24]} out of range 0..{INT32_MAX}"
            raise LineError(msg)
    if e.pod_uid or e.namespace or e.pod_name or e.container_id:
        why = check_identity(e.pod_uid, e.namespace, e.pod_name, e.container_id)
        if why:
            raise LineError(why)


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
            except _UNEXPECTED as exc:
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


def decimal_ns(text: str) -> int:
    """``"1795762664.928514"`` (seconds with up to 9 decimals) -> ns, exactly (no float rounding).

    :class:`LineError` if it is not ``digits[.digits]`` or beyond the int64 ns range (year 2262).
    """
    sec, _, frac = text.partition(".")
    frac = frac[:9]
    if not (sec.isascii() and sec.isdigit()) or (frac and not (frac.isascii() and frac.isdigit())):
        msg = f"bad time {text[:32]!r}"
        raise LineError(msg)
    if len(sec) > 11:
        msg = f"time {text[:32]!r} out of range"
        raise LineError(msg)
    value = int(sec) * NS + int(frac.ljust(9, "0") or "0")
    if value > INT64_MAX:
        msg = f"time {text[:32]!r} out of range (after 2262)"
        raise LineError(msg)
    return value


_TOD = re.compile(r"^(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?$")


class TimeOfDay:
    """Time-of-day stamps (``HH:MM:SS[.frac]``) -> ns from midnight of the first stamp's day.

    A stamp more than 12 h before the previous one is a midnight rollover. ``apply`` adds the
    epoch of that midnight once the whole stream is read (see :class:`ImportOptions`).
    """

    def __init__(self) -> None:
        self.days = 0
        self.used = False
        self.dropped = ""
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
            if self.days >= MAX_ROLLOVERS:
                msg = f"more than {MAX_ROLLOVERS} midnight rollovers of time-of-day stamps"
                raise LineError(msg)
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
        try:
            base = midnight_ns(day, options.tz)
        except TraceFormatError:
            if options.date is not None:
                raise
            base = -1
        col = table.column(idx)
        top = pc.max(col).as_py()
        if top is None:  # no row has a time of day (e.g. only relative stamps)
            return table
        if base < 0 or base + int(top) > INT64_MAX:
            if options.date is not None:
                msg = f"time-of-day stamps dated {day.isoformat()} fall outside 1970 .. 2262: give another date"
                raise TraceFormatError(msg)
            self.dropped = f"file modification date {day.isoformat()} is outside 1970 .. 2262: ts_ns dropped"
            return table.set_column(idx, "ts_ns", pa.nulls(table.num_rows, pa.int64()))
        return table.set_column(idx, "ts_ns", pc.add(col, pa.scalar(base, pa.int64())))

    def notes(self, options: ImportOptions) -> dict[str, Any]:
        """Which calendar date and zone the time-of-day stamps were given (for ``TraceMeta.extra``)."""
        if not self.used:
            return {}
        day = self.first_date(options)
        if day is None:
            return {"time_of_day": "no date given: ts_ns dropped (pass date=)"}
        if self.dropped:
            return {"time_of_day": self.dropped}
        origin = "given" if options.date is not None else "file modification time"
        zone = str(options.tz) if options.tz is not None else "local zone of the importing machine"
        return {"time_of_day": f"{day.isoformat()} ({origin}), {zone}", "midnight_rollovers": self.days}


def midnight_ns(day: dt.date, tz: dt.tzinfo | None) -> int:
    """Unix-epoch ns of 00:00 of ``day`` in ``tz`` (None: this machine's local zone)."""
    naive = dt.datetime(day.year, day.month, day.day)  # noqa: DTZ001 - zone applied just below
    try:
        aware = naive.replace(tzinfo=tz) if tz is not None else naive.astimezone()
        return int(aware.timestamp()) * NS
    except (OverflowError, OSError, ValueError) as exc:
        msg = f"cannot place time-of-day stamps on {day.isoformat()}: {exc}"
        raise TraceFormatError(msg) from None


def strip_runtime(container_id: str) -> str:
    """``containerd://<id>`` (or ``cri-o://``, ``docker://``) -> ``<id>``."""
    return container_id.rpartition("://")[2]
