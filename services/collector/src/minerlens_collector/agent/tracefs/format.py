"""Layouts read at run time from tracefs: the ring-buffer page header and the ``sys_enter`` record.

``events/header_page`` gives the sub-buffer header (``timestamp``, ``commit``, ``data``) and
``events/raw_syscalls/sys_enter/format`` the event ID and field offsets (``args[0]`` included: the
collector tags the fd argument of I/O syscalls with what the fd is). Nothing here is hard-coded
except :data:`DEFAULT_FORMAT`, the x86_64/arm64 layout of Linux 5.x-6.x, used by tests and when a
format must be built without a kernel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from minerlens_core.errors import CaptureError

_FIELD_RE = re.compile(
    r"field:\s*(?P<decl>[^;]*);\s*offset:\s*(?P<offset>\d+);\s*size:\s*(?P<size>\d+);"
    r"(?:\s*signed:\s*(?P<signed>\d+);)?"
)
_ID_RE = re.compile(r"^ID:\s*(\d+)\s*$", re.MULTILINE)

#: ring-buffer constants (include/linux/ring_buffer.h); stable kernel ABI.
RB_ALIGNMENT = 4
RB_EVNT_HDR_SIZE = 4
RB_MAX_SMALL_DATA = RB_ALIGNMENT * 28


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    offset: int
    size: int
    signed: bool


@dataclass(frozen=True, slots=True)
class PageHeader:
    """Offsets of the sub-buffer header fields (``struct buffer_data_page``)."""

    ts_offset: int
    commit_offset: int
    commit_size: int
    data_offset: int
    data_size: int

    @property
    def page_size(self) -> int:
        """Bytes of one sub-buffer as returned by one read() of ``trace_pipe_raw``."""
        return self.data_offset + self.data_size


@dataclass(frozen=True, slots=True)
class SysEnterFormat:
    """What the decoder needs: page header plus the ``sys_enter`` record layout."""

    header: PageHeader
    event_id: int
    record_size: int  # payload bytes of one sys_enter record (common fields + id + args)
    type_offset: int
    type_size: int
    pid_offset: int
    id_offset: int
    id_size: int
    args_offset: int = -1  # offset of ``args[0]`` (-1: the record has no args: arg0 is not decoded)
    arg_size: int = 8

    @property
    def type_len(self) -> int:
        """Ring-buffer ``type_len`` of a sys_enter record (0 when the length lives in array[0])."""
        if self.record_size > RB_MAX_SMALL_DATA:
            return 0
        return (self.record_size + RB_ALIGNMENT - 1) // RB_ALIGNMENT

    @property
    def stride(self) -> int:
        """Bytes one sys_enter record takes in a page, header included."""
        if self.type_len:
            return RB_EVNT_HDR_SIZE + self.type_len * RB_ALIGNMENT
        aligned = (self.record_size + 4 + RB_EVNT_HDR_SIZE + RB_ALIGNMENT - 1) // RB_ALIGNMENT * RB_ALIGNMENT
        return aligned

    def with_page_size(self, page_size: int) -> SysEnterFormat:
        """The same layout for another sub-buffer size."""
        h = self.header
        header = PageHeader(h.ts_offset, h.commit_offset, h.commit_size, h.data_offset, page_size - h.data_offset)
        return SysEnterFormat(
            header,
            self.event_id,
            self.record_size,
            self.type_offset,
            self.type_size,
            self.pid_offset,
            self.id_offset,
            self.id_size,
            self.args_offset,
            self.arg_size,
        )


def parse_fields(text: str) -> dict[str, Field]:
    """Every ``field:`` line of a tracefs format file, by bare name (``args[6]`` -> ``args``)."""
    fields: dict[str, Field] = {}
    for m in _FIELD_RE.finditer(text):
        decl = m.group("decl").strip()
        name = decl.split()[-1].split("[", 1)[0] if decl else ""
        if name and name not in fields:
            signed = m.group("signed") == "1"
            fields[name] = Field(name, int(m.group("offset")), int(m.group("size")), signed)
    return fields


def parse_header_page(text: str) -> PageHeader:
    fields = parse_fields(text)
    try:
        ts, commit, data = fields["timestamp"], fields["commit"], fields["data"]
    except KeyError as exc:
        msg = f"events/header_page lacks field {exc.args[0]!r}; cannot decode ring-buffer pages"
        raise CaptureError(msg) from None
    return PageHeader(ts.offset, commit.offset, commit.size, data.offset, data.size)


def parse_sys_enter_format(text: str, header: PageHeader) -> SysEnterFormat:
    m = _ID_RE.search(text)
    fields = parse_fields(text)
    missing = [n for n in ("common_type", "common_pid", "id") if n not in fields]
    if m is None or missing:
        msg = f"raw_syscalls/sys_enter/format is not understood (missing {missing or ['ID']})"
        raise CaptureError(msg)
    ctype, pid, nr = fields["common_type"], fields["common_pid"], fields["id"]
    if pid.size != 4 or nr.size not in (4, 8) or ctype.size not in (1, 2, 4):
        msg = f"unexpected sys_enter field sizes: common_type={ctype.size} common_pid={pid.size} id={nr.size}"
        raise CaptureError(msg)
    if pid.offset % 4 or nr.offset % 4 or ctype.offset % 4 + ctype.size > 4:
        msg = f"unexpected sys_enter field alignment: common_pid@{pid.offset} id@{nr.offset}"
        raise CaptureError(msg)
    record_size = max(f.offset + f.size for f in fields.values())
    args = fields.get("args")
    args_offset, arg_size = -1, 8
    if args is not None and args.size % 6 == 0 and args.size // 6 in (4, 8) and args.offset % 4 == 0:
        args_offset, arg_size = args.offset, args.size // 6
    return SysEnterFormat(
        header=header,
        event_id=int(m.group(1)),
        record_size=record_size,
        type_offset=ctype.offset,
        type_size=ctype.size,
        pid_offset=pid.offset,
        id_offset=nr.offset,
        id_size=nr.size,
        args_offset=args_offset,
        arg_size=arg_size,
    )


def load_format(events_dir: Path) -> SysEnterFormat:
    """Read both format files under an ``events/`` directory (global or instance)."""
    try:
        header_text = (events_dir / "header_page").read_text()
        event_text = (events_dir / "raw_syscalls" / "sys_enter" / "format").read_text()
    except OSError as exc:
        msg = f"cannot read the ring-buffer format under {events_dir}: {exc.strerror or exc}"
        raise CaptureError(msg) from exc
    return parse_sys_enter_format(event_text, parse_header_page(header_text))


#: x86_64 / arm64 layout with 4 KiB sub-buffers (event ID differs per kernel build: tests only).
DEFAULT_FORMAT = SysEnterFormat(
    header=PageHeader(ts_offset=0, commit_offset=8, commit_size=8, data_offset=16, data_size=4080),
    event_id=443,
    record_size=64,
    type_offset=0,
    type_size=2,
    pid_offset=4,
    id_offset=8,
    id_size=8,
    args_offset=16,
    arg_size=8,
)
