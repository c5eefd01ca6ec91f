"""The format registry and ``import_files``: read inputs in order, parse, concatenate."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import io
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from minerlens_core.errors import TraceFormatError
from minerlens_core.syscalls import Arch, host_arch
from minerlens_core.traces.importers.base import (
    MAX_LINE_CHARS,
    Importer,
    ImportOptions,
    ImportResult,
    Malformed,
    OverlongLine,
)
from minerlens_core.traces.importers.lines import time_facts
from minerlens_core.traces.importers.names import NamesImporter
from minerlens_core.traces.importers.perf import PerfImporter
from minerlens_core.traces.importers.strace import StraceImporter
from minerlens_core.traces.importers.sysdig import SysdigImporter
from minerlens_core.traces.importers.tetragon import TetragonImporter
from minerlens_core.traces.model import TraceMeta, read_trace

IMPORTERS: dict[str, Importer] = {
    imp.name: imp for imp in (StraceImporter(), PerfImporter(), SysdigImporter(), TetragonImporter(), NamesImporter())
}
ALIASES = {"lid-ds": "sysdig", "lidds": "sysdig"}
PARQUET = "parquet"
FORMATS: tuple[str, ...] = ("strace", "perf", "sysdig", "lid-ds", "tetragon", "names", PARQUET)
"""Accepted ``fmt`` values; ``lid-ds`` is the sysdig importer (LID-DS files are sysdig text)."""

_SNIFF = 8192
_BINARY_HINTS = (
    (b"PAR1", "a Parquet file: use format 'parquet'"),
    (b"PERFILE2", "a perf.data file: convert it with `perf script -i FILE > FILE.txt`"),
    (b"\x0a\x0d\x0d\x0a", "a sysdig .scap capture: convert it with `sysdig -r FILE > FILE.txt`"),
)


def canonical_format(fmt: str) -> str:
    name = fmt.strip().lower()
    name = ALIASES.get(name, name)
    if name != PARQUET and name not in IMPORTERS:
        msg = f"unknown trace format {fmt!r}; known formats: {', '.join(FORMATS)}"
        raise TraceFormatError(msg)
    return name


def get_importer(fmt: str) -> Importer:
    """The importer of a text format (``parquet`` has none: it is read with ``read_trace``)."""
    name = canonical_format(fmt)
    if name == PARQUET:
        msg = "format 'parquet' is read with minerlens_core.traces.read_trace, not parsed"
        raise TraceFormatError(msg)
    return IMPORTERS[name]


def import_files(
    paths: Sequence[str | Path],
    fmt: str,
    *,
    arch: Arch | None = None,
    pod_uid: str | None = None,
    namespace: str | None = None,
    pod_name: str | None = None,
    container_id: str | None = None,
    date: dt.date | None = None,
    tz: dt.tzinfo | None = None,
    epoch_offset_ns: int | None = None,
    default_tid: int | None = None,
) -> ImportResult:
    """Import ``paths`` (in this order) in format ``fmt`` into one trace table.

    Text files are read line by line (``.gz`` and single-member ``.zip`` too), UTF-8 with invalid
    bytes replaced, in pieces of at most ``MAX_LINE_CHARS`` bytes (a longer line is malformed, its
    rest skipped unread). Malformed lines
    are collected (``ImportResult.malformed``, counted in ``meta.malformed_lines``); a missing,
    unreadable or binary file, an unknown format, or a file without a single syscall entry or
    recognised line raises :class:`TraceFormatError`. Time-of-day stamps (strace ``-t``/``-tt``,
    sysdig) take ``date`` as the date of the first stamp, else the file's modification date as
    the date of the last one; see :class:`ImportOptions` for every option.
    """
    name = canonical_format(fmt)
    if not paths:
        msg = "no input files given"
        raise TraceFormatError(msg)
    arch = arch or host_arch()
    options = ImportOptions(
        pod_uid=pod_uid,
        namespace=namespace,
        pod_name=pod_name,
        container_id=container_id,
        date=date,
        tz=tz,
        epoch_offset_ns=epoch_offset_ns,
        default_tid=default_tid,
    )
    if name == PARQUET:
        return _merge(name, arch, [_read_parquet(Path(p), options) for p in paths])
    importer = IMPORTERS[name]
    results = []
    for p in paths:
        path = Path(p)
        with open_lines(path) as lines:
            opts = options if date is not None else _with_end_date(options, path)
            results.append(importer.parse(lines, arch=arch, source_name=str(path), options=opts))
    return _merge(name, arch, results)


@contextmanager
def open_lines(path: Path) -> Iterator[Iterator[str]]:
    """Lines of a text file, read lazily; TraceFormatError (path and cause) on any read problem."""
    try:
        raw = path.open("rb")
    except FileNotFoundError:
        msg = f"{path}: no such file"
        raise TraceFormatError(msg) from None
    except IsADirectoryError:
        msg = f"{path}: is a directory, not a trace file"
        raise TraceFormatError(msg) from None
    except OSError as exc:
        msg = f"{path}: cannot open: {exc.strerror or exc}"
        raise TraceFormatError(msg) from None
    with raw:
        stream = _decompressed(path, raw)
        head = _peek(path, stream)
        for magic, hint in _BINARY_HINTS:
            if head.startswith(magic):
                msg = f"{path}: binary file, {hint}"
                raise TraceFormatError(msg)
        if b"\0" in head:
            msg = f"{path}: binary file (NUL bytes), not {path.suffix or 'a'} text trace output"
            raise TraceFormatError(msg)
        yield _guarded(path, stream)


def _decompressed(path: Path, raw: io.BufferedReader) -> Any:
    """``raw`` or its decompressed content: a binary stream with ``peek``."""
    magic = _peek(path, raw)[:4]
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if magic == b"PK\x03\x04":
        try:
            archive = zipfile.ZipFile(raw)
            members = [i for i in archive.infolist() if not i.is_dir()]
            texts = [i for i in members if i.filename.endswith((".sc", ".txt", ".log", ".json", ".jsonl"))]
            chosen = members if len(members) == 1 else texts
            if len(chosen) != 1:
                msg = f"{path}: zip archive needs exactly one trace member, has {[i.filename for i in members]}"
                raise TraceFormatError(msg)
            return archive.open(chosen[0])
        except zipfile.BadZipFile as exc:
            msg = f"{path}: broken zip archive: {exc}"
            raise TraceFormatError(msg) from None
    return raw


def _peek(path: Path, stream: Any) -> bytes:
    try:
        head: bytes = stream.peek(_SNIFF)
        return head[:_SNIFF]
    except (OSError, EOFError, zlib.error) as exc:
        msg = f"{path}: cannot read: {exc}"
        raise TraceFormatError(msg) from None


def _guarded(path: Path, stream: Any) -> Iterator[str]:
    try:
        yield from bounded_lines(stream)
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        msg = f"{path}: read error: {exc}"
        raise TraceFormatError(msg) from None


def bounded_lines(stream: io.BufferedIOBase, limit: int = MAX_LINE_CHARS) -> Iterator[str]:
    """UTF-8 lines (invalid bytes replaced) of a binary stream, each read in at most ``limit`` bytes.

    A longer line comes as an :class:`OverlongLine` of its first ``limit`` bytes; the rest of it is
    skipped in pieces, so memory stays bounded whatever the input.
    """
    while True:
        raw = stream.readline(limit + 1)
        if not raw:
            return
        if len(raw) > limit and not raw.endswith(b"\n"):
            while True:  # skip the rest of the overlong line
                rest = stream.readline(limit)
                if not rest or rest.endswith(b"\n"):
                    break
            yield OverlongLine(raw[:limit].decode("utf-8", errors="replace"))
            continue
        yield raw.decode("utf-8", errors="replace")


def _with_end_date(options: ImportOptions, path: Path) -> ImportOptions:
    """The file's modification date (in the stamps' zone) as the date of its last stamp."""
    try:
        mtime = path.stat().st_mtime
        stamp = dt.datetime.fromtimestamp(mtime, tz=options.tz or dt.UTC)
        end = stamp.date() if options.tz is not None else stamp.astimezone().date()
    except (OSError, OverflowError, ValueError):  # an absurd modification time: no date known
        return options
    return dataclasses.replace(options, end_date=end)


def _read_parquet(path: Path, options: ImportOptions) -> ImportResult:
    trace = read_trace(path)
    table = trace.table
    for column in ("pod_uid", "namespace", "pod_name", "container_id"):
        value = getattr(options, column)
        if value is not None:
            idx = table.schema.get_field_index(column)
            table = table.set_column(idx, column, pa.array([value] * table.num_rows, pa.string()))
    meta = trace.meta.model_copy(update={"extra": {**trace.meta.extra, "files": [str(path)]}})
    return ImportResult(table, meta, [])


def _merge(fmt: str, arch: Arch, results: list[ImportResult]) -> ImportResult:
    tables = [r.table for r in results]
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    if table.num_rows == 0:
        files = ", ".join(f for r in results for f in r.meta.extra.get("files", []))
        bad = sum(r.meta.malformed_lines for r in results)
        msg = f"no syscall entries in {files or 'the input'} ({fmt} format; {bad} lines malformed)"
        raise TraceFormatError(msg)
    malformed: list[Malformed] = [m for r in results for m in r.malformed]
    extra: dict[str, Any] = {}
    for r in results:
        for key, value in r.meta.extra.items():
            if key == "files":
                extra.setdefault("files", []).extend(value)
            elif key == "unknown_syscalls":
                counts = extra.setdefault(key, {})
                for sc, n in value.items():
                    counts[sc] = counts.get(sc, 0) + n
            else:
                extra.setdefault(key, value)
    first = results[0].meta
    meta = TraceMeta(
        **{
            **first.model_dump(exclude={"has_time", "seconds", "malformed_lines", "lost_events", "extra"}),
            "source": first.source if fmt == PARQUET else fmt,
            "arch": first.arch if fmt == PARQUET else arch,
            "malformed_lines": sum(r.meta.malformed_lines for r in results),
            "lost_events": sum(r.meta.lost_events for r in results),
            "extra": extra,
            **time_facts(table),
        }
    )
    return ImportResult(table, meta, malformed)
