"""``perf script`` text of a syscall-tracepoint recording -> syscall entries (format ``perf``).

The capture of the paper is ``perf record -e raw_syscalls:sys_enter -- CMD`` (or ``-a``, ``-p``)
followed by ``perf script``. Accepted line layouts (``comm`` may contain spaces; leading
padding is free; the sample period some perf versions print before the event is ignored)::

    <comm> <tid> [<cpu>] <secs.frac>: raw_syscalls:sys_enter: NR <nr> (<args>)
              ls 12655 [001]   675.264274: raw_syscalls:sys_enter: NR 12 (0, 7ffd4e5df6ac, 0, 37f, 0, 0)

    <comm> <pid>/<tid> <secs.frac>: raw_syscalls:sys_enter: NR <nr> (...)     (-F comm,pid,tid,time,event,trace)
              ls 12655/12655   675.264274: raw_syscalls:sys_enter: NR 12 (0, 7ffd4e5df6ac, 0, 37f, 0, 0)

    <comm> <tid> [<cpu>] <secs.frac>: syscalls:sys_enter_<name>: <args>     (-e 'syscalls:sys_enter_*')
              ls 12792 [000]   677.876247:                     syscalls:sys_enter_brk: brk: 0x00000000

The cpu field and the time are optional (``-F`` without them). ``raw_syscalls:sys_exit``,
``syscalls:sys_exit_*``, any other event and ``#`` header lines are skipped silently.

Time: perf stamps are the kernel's monotonic trace clock (seconds since boot), not wall time:
``ts_ns`` stays null unless ``ImportOptions.epoch_offset_ns`` is given (``ts_ns = stamp +
offset``; use 0 for ``perf record -k realtime`` captures, whose stamps are already Unix time).
The first and last raw stamps are kept in ``meta.extra`` to align the trace later.
"""

from __future__ import annotations

import re
from typing import Any

from minerlens_core.syscalls import Arch
from minerlens_core.traces.importers.base import (
    Entry,
    ImportOptions,
    LineError,
    LineParser,
    parse_int,
)
from minerlens_core.traces.importers.lines import LineImporter, ParserBase
from minerlens_core.traces.importers.timestamps import decimal_ns

_LINE = re.compile(
    r"""\s*(?:(?P<comm>.*?)\s+)?
        (?:(?P<pid>-?\d+)/)?(?P<tid>-?\d+)\s+
        (?:\[(?P<cpu>\d+)\]\s+)?
        (?:(?P<time>\d+\.\d+):\s+)?
        (?:\d+\s+)?
        (?P<event>[\w.-]+:[\w.-]+):\s*(?P<trace>.*)""",
    re.X,
)
_NR = re.compile(r"NR\s+(-?\d+)")
_RAW_ENTER = "raw_syscalls:sys_enter"
_TP_ENTER = "syscalls:sys_enter_"


class _PerfParser(ParserBase):
    def __init__(self, options: ImportOptions) -> None:
        super().__init__(options)
        self.first: str | None = None
        self.last: str | None = None

    def feed(self, text: str) -> Entry | None:
        if text.lstrip().startswith("#"):
            return None
        m = _LINE.fullmatch(text)
        if m is None:
            msg = "not a perf script sample line"
            raise LineError(msg)
        event = m.group("event")
        if event == _RAW_ENTER:
            nr_m = _NR.match(m.group("trace"))
            if nr_m is None:
                msg = "raw_syscalls:sys_enter without 'NR <number>'"
                raise LineError(msg)
            if nr_m.group(1).startswith("-"):
                msg = f"negative syscall number {nr_m.group(1)[:24]}"
                raise LineError(msg)
            nr = parse_int(nr_m.group(1), "syscall number")
            name = None
        elif event.startswith(_TP_ENTER):
            nr, name = None, event.removeprefix(_TP_ENTER)
        else:
            return None
        tid = parse_int(m.group("tid"), "tid")
        pid = parse_int(m.group("pid"), "pid") if m.group("pid") else None
        return Entry(tid=tid, pid=pid, nr=nr, name=name, ts_ns=self._ts(m.group("time")), comm=m.group("comm") or "")

    def _ts(self, stamp: str | None) -> int | None:
        if stamp is None:
            return None
        if self.first is None:
            self.first = stamp
        self.last = stamp
        offset = self.options.epoch_offset_ns
        return None if offset is None else decimal_ns(stamp) + offset

    def extra(self) -> dict[str, Any]:
        notes: dict[str, Any] = {"perf_clock_first_s": self.first, "perf_clock_last_s": self.last}
        if self.options.epoch_offset_ns is None:
            notes["time_note"] = "perf monotonic stamps, no epoch_offset_ns given: ts_ns null"
        else:
            notes["epoch_offset_ns"] = self.options.epoch_offset_ns
        return notes


class PerfImporter(LineImporter):
    name = "perf"

    def new_parser(self, arch: Arch, source_name: str, options: ImportOptions) -> LineParser:
        return _PerfParser(options)
