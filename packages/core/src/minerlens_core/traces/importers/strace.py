"""strace text output -> syscall entries (importer format ``strace``; also the collector's strace source).

Only syscall *entries* matter: name (or number), time and thread. Accepted line layouts, each
optionally decorated by ``-n`` (``[  59] ``), ``-i`` (``[00007f...] ``), ``-y``, ``-T``, ``-X``:

* ``-o FILE -f`` (pid of the calling thread, then two spaces)::

      5247  06:57:21.387282 execve("/usr/bin/ls", ["ls", "/"], 0x7fff627d9608 /* 39 vars */) = 0

* ``-f`` to stderr (``[pid N] `` only while strace traces more than one task)::

      [pid  5591] 06:57:30.202818 rseq(0x7f6eb9879fe0, 0x20, 0, 0x53053053 <unfinished ...>
      06:57:30.204550 clone3({flags=CLONE_VM|...|CLONE_THREAD|..., ...}) = 5592

  An unprefixed line belongs to the one task traced at that moment: the parser follows which
  tasks are alive (``[pid N]`` lines, ``strace: Process N attached``, clone results, ``+++``
  exits). Lines of the first task before any ``[pid N]`` get its pid once it shows up; when it
  never does (one process only), ``default_tid`` or 0.
* ``-ff -o PREFIX``: one file per task named ``PREFIX.PID``, lines without pid; the pid comes from
  the file-name suffix (``source_name``).

Timestamps: none, ``-t`` (``06:57:44``), ``-tt`` (``06:57:21.387282``) -- time of day in the
capture host's local zone, made absolute with ``ImportOptions.date``/``end_date``/``tz`` --, or
``-ttt`` / ``--timestamps=unix,ns`` (``1795762664.928514``, Unix epoch). ``-r`` relative stamps
(integer part under 10 digits) are not times: ``ts_ns`` null.

A syscall interrupted by another task's line is counted ONCE, at its ``<unfinished ...>`` line;
the matching ``<... name resumed>`` line is skipped (an orphan ``resumed`` line, e.g. after
attaching, counts at that line). Not syscalls, skipped silently: ``--- SIGxxx {...} ---``,
``+++ exited with 0 +++`` / ``+++ killed by ... +++``, ``strace: ...`` messages and the fragments
of a line they cut, ``-k`` stack frames (`` > /lib/...``), the ``-c``/``-C`` summary table.

Thread groups: ``pid`` is the thread-group id when strace shows it (a ``clone``/``clone3`` with
``CLONE_THREAD`` puts the child in the caller's group); otherwise ``pid == tid`` (``-ff`` thread
files cannot be linked). ``comm`` follows ``execve`` (basename of the path, 15 chars),
``prctl(PR_SET_NAME, "...")`` and clones.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
import pyarrow as pa

from minerlens_core.syscalls import Arch
from minerlens_core.traces.importers.base import (
    Entry,
    ImportOptions,
    LineError,
    LineParser,
    parse_int,
)
from minerlens_core.traces.importers.lines import LineImporter, ParserBase
from minerlens_core.traces.importers.timestamps import TimeOfDay, decimal_ns

MAIN = -1
"""Placeholder tid of the first traced task while its pid is unknown (stderr output)."""

_LEADER = re.compile(
    r"""(?:\[pid\s+(?P<bpid>\d+)\]\s+|(?P<pid>\d{1,7})\s+)?
        \s*(?:(?P<ts>\d\d:\d\d:\d\d(?:\.\d+)?|\d+\.\d+|\d{10,})\s+)?
        (?:\[\s*(?P<scno>\d{1,4})\]\s+)?
        (?:\[(?:[0-9a-f]{8,16}|\?{8,16})\]\s+)?""",
    re.X,
)
_CALL = re.compile(r"(?P<name>[A-Za-z_]\w*|\?{4})\((?P<rest>.*)")
_RESUMED = re.compile(r"<\.\.\. (?P<name>[\w?]+) resumed>(?P<rest>.*)")
_ATTACHED = re.compile(r"strace: Process (\d+) attached")
_RET = re.compile(r"\)\s+=\s+(-?\d+)")
_EXECVE_PATH = re.compile(r'(?:[^",(]*,\s*)?"((?:[^"\\]|\\.)*)"')  # matched at the first argument (execveat: second)
_SET_NAME = re.compile(r'PR_SET_NAME,\s+"((?:[^"\\]|\\.)*)"')  # matched at the first argument
_SUMMARY = re.compile(
    r"\s*(?:% time\s|-{6}\s|\d+\.\d+\s+\d+\.\d+\s+\d+\s+\d+\s+(?:\d+\s+)?[\w?]+\s*$|calls\s+errors\s)"
)
_NUMBERED = re.compile(r"syscall_(0x[0-9a-fA-F]+|\d+)")
_FF_SUFFIX = re.compile(r"\.(\d+)$")
_CLONES = frozenset({"clone", "clone3"})
_EXECS = frozenset({"execve", "execveat"})
_UNFINISHED = "<unfinished ...>"


class _Tasks:
    """Which tasks strace traces right now, to attribute lines printed without ``[pid N]``."""

    def __init__(self) -> None:
        self.main: int | None = None
        self.live: set[int] = {MAIN}
        self.children: set[int] = set()
        self.last = MAIN
        self.seen_syscall = False

    def saw(self, tid: int) -> None:
        if self.main is None and MAIN in self.live and tid not in self.live and tid not in self.children:
            self.main = tid
            self.live.discard(MAIN)
        self.live.add(tid)
        self.last = tid

    def child(self, tid: int) -> None:
        if not self.seen_syscall:  # "-p PID" attach messages come first: there is no main task
            self.live.discard(MAIN)
        self.children.add(tid)
        self.live.add(tid)

    def exited(self, tid: int) -> None:
        self.live.discard(tid)

    def current(self) -> int:
        if len(self.live) == 1:
            return next(iter(self.live))
        return MAIN if MAIN in self.live else self.last


class StraceStream:
    """Incremental parser of ONE strace output stream; shared by the importer and the collector.

    ``feed(line)`` returns the :class:`Entry` a line starts (tid, name and/or nr, ts_ns), None for
    a recognised non-entry line, or raises :class:`LineError`. ``ts_ns`` is Unix-epoch ns for
    ``-ttt`` stamps, ns since midnight for ``-t``/``-tt`` (see :class:`TimeOfDay`), None otherwise.

    ``track_tasks=False`` (a live ``-o FILE -f`` stream, every line with its pid) skips the
    bookkeeping that only serves unprefixed lines, thread groups and comm, so memory stays flat.
    """

    def __init__(self, arch: Arch, *, stream_tid: int | None = None, track_tasks: bool = True) -> None:
        self.arch = arch
        self.stream_tid = stream_tid
        self.track_tasks = track_tasks
        self.clock = TimeOfDay()
        self.tasks = _Tasks()
        self.tgid: dict[int, int] = {}
        self.comm: dict[int, str] = {}
        self.relative_stamps = False
        self._unfinished: dict[int, str] = {}
        self._thread_clone: set[int] = set()
        self._cut: tuple[int, str, bool] | None = None  # (tid, name, CLONE_THREAD) of a line cut short

    # -- public ---------------------------------------------------------------------------------
    def feed(self, text: str) -> Entry | None:
        m = _LEADER.match(text)
        assert m is not None  # every group is optional
        prefix = m.group("bpid") or m.group("pid")
        ts_text = m.group("ts")
        body = text[m.end() :]
        cut, self._cut = self._cut, None
        if prefix is None and ts_text is None and not m.group("scno"):
            if body.startswith(("strace: ", "[ Process PID=")):
                self._attached(body)
                return None
            if body.startswith("> "):  # -k stack frame
                return None
            if cut is not None:  # the rest of a line an interleaved "strace: ..." message cut
                tid, name, thread_clone = cut
                if body.rstrip().endswith(_UNFINISHED):
                    self._unfinished[tid] = name
                    if thread_clone:
                        self._thread_clone.add(tid)
                else:
                    self._result(tid, name, body, thread_clone=thread_clone)
                return None
        if body.startswith("<... "):
            return self._resumed(body, prefix, ts_text)
        if body.startswith("+++ "):
            tid = self._tid(prefix)
            if self.track_tasks:
                self.tasks.exited(tid)
            self._unfinished.pop(tid, None)
            return None
        if body.startswith("--- "):
            return None
        call = _CALL.match(body)
        if call is None:
            if _SUMMARY.match(text):
                return None
            msg = "not a strace syscall line"
            raise LineError(msg)
        return self._call(call.group("name"), call.group("rest"), prefix, ts_text, m.group("scno"))

    def pid_of(self, tid: int) -> int:
        """Thread-group id of a (resolved) tid, as far as the stream showed it."""
        return self.tgid.get(tid, tid)

    # -- lines ----------------------------------------------------------------------------------
    def _call(self, name: str, rest: str, prefix: str | None, ts_text: str | None, scno: str | None) -> Entry:
        tid = self._tid(prefix)
        ts = self._ts(ts_text)
        self.tasks.seen_syscall = True
        cut = _ATTACHED.search(rest)
        if cut is not None:
            self._attached(rest[cut.start() :])
            self._cut = (tid, name, "CLONE_THREAD" in rest)
            rest = rest[: cut.start()]
        nr: int | None = parse_int(scno, "syscall number", 0) if scno else None
        label: str | None = name
        numbered = _NUMBERED.fullmatch(name)
        if numbered is not None:
            nr, label = parse_int(numbered.group(1), "syscall number", 0), None
        if rest.rstrip().endswith(_UNFINISHED):
            self._unfinished[tid] = name  # replaces a stale one (a task that died mid-syscall)
            if name in _CLONES and "CLONE_THREAD" in rest:
                self._thread_clone.add(tid)
        else:
            self._result(tid, name, rest, thread_clone="CLONE_THREAD" in rest)
        if name == "prctl":
            self._set_name(tid, rest)
        return Entry(tid=tid, nr=nr, name=label, ts_ns=ts, comm=self.comm.get(tid, ""))

    def _resumed(self, body: str, prefix: str | None, ts_text: str | None) -> Entry | None:
        m = _RESUMED.match(body)
        if m is None:
            msg = "bad '<... resumed>' line"
            raise LineError(msg)
        tid = self._tid(prefix)
        name = m.group("name")
        thread_clone = tid in self._thread_clone
        self._thread_clone.discard(tid)
        if self._unfinished.get(tid) == name:
            del self._unfinished[tid]
            self._result(tid, name, m.group("rest"), thread_clone=thread_clone)
            return None
        ts = self._ts(ts_text)
        self._result(tid, name, m.group("rest"), thread_clone=thread_clone)
        numbered = _NUMBERED.fullmatch(name)
        if numbered is not None:
            nr = parse_int(numbered.group(1), "syscall number", 0)
            return Entry(tid=tid, nr=nr, ts_ns=ts, comm=self.comm.get(tid, ""))
        return Entry(tid=tid, name=name, ts_ns=ts, comm=self.comm.get(tid, ""))

    def _result(self, tid: int, name: str, rest: str, *, thread_clone: bool) -> None:
        """Follow clones (new tasks, thread groups, comm) and execs (comm)."""
        if not self.track_tasks:
            return
        if name in _CLONES:
            rets = _RET.findall(rest)
            child = _task_id(rets[-1]) if rets else None
            if child is not None and child > 0:
                self.tasks.child(child)
                if thread_clone:
                    self.tgid[child] = self.tgid.get(tid, tid)
                if tid in self.comm:
                    self.comm[child] = self.comm[tid]
        elif name in _EXECS:
            rets = _RET.findall(rest)
            path = _EXECVE_PATH.match(rest) if rets and rets[-1] == "0" else None
            if path is not None:
                self.comm[tid] = os.path.basename(path.group(1))[:15]

    def _set_name(self, tid: int, rest: str) -> None:
        if not self.track_tasks:
            return
        m = _SET_NAME.match(rest)
        if m is not None:
            self.comm[tid] = m.group(1)[:15]

    def _attached(self, text: str) -> None:
        if not self.track_tasks:
            return
        for pid in _ATTACHED.findall(text):
            task = _task_id(pid)
            if task is not None:
                self.tasks.child(task)

    # -- fields ---------------------------------------------------------------------------------
    def _tid(self, prefix: str | None) -> int:
        if prefix is not None:
            tid = parse_int(prefix, "pid", 0)
            if not self.track_tasks:
                return tid
            unknown_main = self.tasks.main is None
            self.tasks.saw(tid)
            if unknown_main and self.tasks.main is not None:  # the first task's pid just showed up
                for state in (self.comm, self._unfinished):
                    if MAIN in state:
                        state[tid] = state.pop(MAIN)
                if MAIN in self._thread_clone:
                    self._thread_clone.add(tid)
            return tid
        if self.stream_tid is not None:
            return self.stream_tid
        return self.tasks.current()

    def _ts(self, text: str | None) -> int | None:
        if text is None:
            return None
        if ":" in text:
            return self.clock.ns(text)
        if len(text.partition(".")[0]) >= 10:
            return decimal_ns(text)
        self.relative_stamps = True
        return None


def _task_id(text: str) -> int | None:
    """A pid/tid strace printed (clone result, attach message, ``-ff`` suffix); None if out of range."""
    try:
        return parse_int(text, "task id", 0)
    except LineError:
        return None


class _StraceParser(ParserBase):
    """The importer side: a :class:`StraceStream` plus the whole-stream fix-ups."""

    def __init__(self, arch: Arch, source_name: str, options: ImportOptions) -> None:
        super().__init__(options)
        suffix = _FF_SUFFIX.search(os.path.basename(source_name))
        self.stream = StraceStream(arch, stream_tid=_task_id(suffix.group(1)) if suffix else None)
        self.clock = self.stream.clock
        self.unknown_tid = False

    def feed(self, text: str) -> Entry | None:
        return self.stream.feed(text)

    def finish(self, table: pa.Table) -> pa.Table:
        table = super().finish(table)
        if table.num_rows == 0:
            return table
        main = self.stream.tasks.main
        if main is None:
            main = self.options.default_tid if self.options.default_tid is not None else 0

        def final(tid: int) -> int:
            return main if tid == MAIN else tid

        raw = table.column("tid").to_numpy()
        self.unknown_tid = bool(self.stream.tasks.main is None and (raw == MAIN).any())
        uniq, inverse = np.unique(raw, return_inverse=True)
        tids = np.array([final(int(t)) for t in uniq], np.int32)[inverse]
        pids = np.array([final(self.stream.pid_of(int(t))) for t in uniq], np.int32)[inverse]
        table = table.set_column(table.schema.get_field_index("tid"), "tid", pa.array(tids, pa.int32()))
        return table.set_column(table.schema.get_field_index("pid"), "pid", pa.array(pids, pa.int32()))

    def extra(self) -> dict[str, Any]:
        notes = super().extra()
        if self.unknown_tid:
            notes["tid_note"] = "lines without pid prefix and no pid known: tid = default_tid or 0"
        if self.stream.stream_tid is not None:
            notes["ff_tid"] = self.stream.stream_tid
        if self.stream.relative_stamps:
            notes["relative_stamps"] = "strace -r stamps are not times: ts_ns null"
        return notes


class StraceImporter(LineImporter):
    name = "strace"

    def new_parser(self, arch: Arch, source_name: str, options: ImportOptions) -> LineParser:
        return _StraceParser(arch, source_name, options)
