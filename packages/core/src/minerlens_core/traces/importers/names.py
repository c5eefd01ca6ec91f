"""Plain syscall sequences -> syscall entries (format ``names``).

Text of syscall names or numbers in order, separated by any whitespace (several per line
allowed); a name may carry the ``sys_enter_`` or ``sys_`` prefix, ``sys_<nr>`` is a number;
lines whose first non-blank character is ``#`` are comments::

    # xmrig, first syscalls
    execve brk mmap
    sys_enter_openat 257 sys_202

A token that is neither a non-negative number (ASCII digits, int32) nor a syscall name of the trace
architecture makes its line malformed (the whole line is skipped). There is no time (``ts_ns`` null, ``has_time``
false) and no thread: ``tid`` = ``ImportOptions.default_tid`` or 0.
"""

from __future__ import annotations

from minerlens_core.syscalls import Arch, syscall_number
from minerlens_core.traces.importers.base import (
    Entry,
    ImportOptions,
    LineError,
    LineParser,
    parse_int,
)
from minerlens_core.traces.importers.lines import LineImporter, ParserBase


class _NamesParser(ParserBase):
    def __init__(self, arch: Arch, options: ImportOptions) -> None:
        super().__init__(options)
        self.arch = arch
        self.tid = options.default_tid or 0

    def feed(self, text: str) -> list[Entry]:
        if text.lstrip().startswith("#"):
            return []
        out: list[Entry] = []
        bad: list[str] = []
        for token in text.split():
            if token.isascii() and token.isdigit():
                nr: int | None = parse_int(token, "syscall number", 0)
            else:
                nr = syscall_number(token, self.arch) if token.isascii() and len(token) <= 64 else None
            if nr is None:
                bad.append(token[:64])
            else:
                out.append(Entry(tid=self.tid, nr=nr))
        if bad:
            shown = ", ".join(repr(t) for t in bad[:3])
            msg = f"not a syscall name or number of {self.arch.value}: {shown}"
            raise LineError(msg)
        return out


class NamesImporter(LineImporter):
    name = "names"

    def new_parser(self, arch: Arch, source_name: str, options: ImportOptions) -> LineParser:
        return _NamesParser(arch, options)
