"""Importers of other tools' syscall traces into the canonical trace table.

``import_files(paths, fmt)`` reads files in order and returns one :class:`ImportResult`
(table in ``TRACE_SCHEMA``, ``TraceMeta``, malformed lines). Formats (``FORMATS``): ``strace``,
``perf`` (``perf script`` of ``raw_syscalls:sys_enter`` / ``syscalls:sys_enter_*``), ``sysdig``
(= ``lid-ds``), ``tetragon`` (``tetra getevents -o json``), ``names`` (plain syscall names or
numbers) and ``parquet`` (an existing minerlens trace). Each module's docstring lists the exact
line layouts it accepts; ``base`` lists the limits every importer enforces (line length, number
ranges, names, nesting): hostile input gives malformed lines or ``TraceFormatError``, never a traceback.
"""

from minerlens_core.traces.importers.base import (
    Entry,
    Importer,
    ImportOptions,
    ImportResult,
    LineError,
    Malformed,
)
from minerlens_core.traces.importers.registry import FORMATS, IMPORTERS, get_importer, import_files
from minerlens_core.traces.importers.strace import StraceStream

__all__ = [
    "FORMATS",
    "IMPORTERS",
    "Entry",
    "ImportOptions",
    "ImportResult",
    "Importer",
    "LineError",
    "Malformed",
    "StraceStream",
    "get_importer",
    "import_files",
]
