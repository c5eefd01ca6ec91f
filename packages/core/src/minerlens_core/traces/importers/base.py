"""What every importer shares: options, results, entries, limits and line errors (the line loop and the row sink:
``lines``; time stamps: ``timestamps``).

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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import pyarrow as pa

from minerlens_core.schemas.bounds import INT32_MAX, INT32_MIN, INT64_MAX
from minerlens_core.syscalls import Arch
from minerlens_core.traces.importers.identity import check_identity
from minerlens_core.traces.model import TraceMeta

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

NS = 1_000_000_000


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


UNEXPECTED_ERRORS = (ValueError, ArithmeticError, LookupError, TypeError, RecursionError, AttributeError)
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


def strip_runtime(container_id: str) -> str:
    """``containerd://<id>`` (or ``cri-o://``, ``docker://``) -> ``<id>``."""
    return container_id.rpartition("://")[2]
