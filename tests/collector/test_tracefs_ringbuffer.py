"""Ring-buffer decoder on synthetic sub-buffers built byte by byte (no kernel needed)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from minerlens_collector.agent.tracefs import TracefsInstance, parse_stats
from minerlens_collector.agent.tracefs.format import (
    DEFAULT_FORMAT,
    parse_header_page,
    parse_sys_enter_format,
)
from minerlens_collector.agent.tracefs.ringbuffer import (
    RB_MISSED_EVENTS,
    RB_MISSED_STORED,
    decode_pages,
    decode_pages_reference,
)
from minerlens_core.errors import CaptureError

FMT = DEFAULT_FORMAT
EID = FMT.event_id
PAGE = FMT.header.page_size

HEADER_PAGE = """\
\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;
\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;
\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;
\tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;
"""
SYS_ENTER_FORMAT = """\
name: sys_enter
ID: 443
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;
\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;

print fmt: "NR %ld (%lx, %lx, %lx, %lx, %lx, %lx)", REC->id, REC->args[0]
"""


def payload(tid: int, nr: int, etype: int = EID, arg0: int = 0) -> bytes:
    return struct.pack("<HBBiq6Q", etype, 0, 0, tid, nr, arg0, *range(1, 6))


class PageBuilder:
    """Writes records the way ring_buffer.c lays them out."""

    def __init__(self, ts: int) -> None:
        self.ts = ts
        self.data = bytearray()

    def record(self, delta: int, tid: int, nr: int, etype: int = EID, arg0: int = 0) -> PageBuilder:
        body = payload(tid, nr, etype, arg0)
        self.data += struct.pack("<I", (delta << 5) | (len(body) // 4)) + body
        return self

    def long_record(self, delta: int, tid: int, nr: int, arg0: int = 0) -> PageBuilder:
        """type_len 0: array[0] = data length + 4, data from array[1]."""
        body = payload(tid, nr, arg0=arg0)
        self.data += struct.pack("<II", delta << 5, len(body) + 4) + body
        return self

    def time_extend(self, delta: int) -> PageBuilder:
        self.data += struct.pack("<II", ((delta & ((1 << 27) - 1)) << 5) | 30, delta >> 27)
        return self

    def time_stamp(self, abs_ts: int) -> PageBuilder:
        self.data += struct.pack("<II", ((abs_ts & ((1 << 27) - 1)) << 5) | 31, abs_ts >> 27)
        return self

    def padding(self, nbytes: int, delta: int = 1) -> PageBuilder:
        self.data += struct.pack("<II", (delta << 5) | 29, nbytes - 4) + bytes(nbytes - 8)
        return self

    def build(self, flags: int = 0, missed: int | None = None, tail_padding: bool = False) -> bytes:
        data = bytes(self.data)
        commit = len(data)
        if tail_padding:  # a page closed by rb_reset_tail: padding event to the end, commit = page size
            rest = FMT.header.data_size - len(data)
            data += struct.pack("<II", (1 << 5) | 29, rest - 4) + bytes(rest - 8)
            commit = len(data)
        extra = b""
        if missed is not None:
            extra = struct.pack("<Q", missed)
            flags |= RB_MISSED_STORED
        body = data + extra
        page = struct.pack("<Qq", self.ts, commit | flags) + body
        return page + bytes(PAGE - len(page))


def test_format_parsed_from_text() -> None:
    header = parse_header_page(HEADER_PAGE)
    fmt = parse_sys_enter_format(SYS_ENTER_FORMAT, header)
    assert fmt == DEFAULT_FORMAT
    assert (fmt.args_offset, fmt.arg_size) == (16, 8)
    assert fmt.type_len == 16
    assert fmt.stride == 68
    assert fmt.with_page_size(65536).header.data_size == 65520


def test_plain_records_timestamps_are_cumulative() -> None:
    b = PageBuilder(1_000_000)
    deltas = [0, 5, 7, 1000, 3]
    for i, d in enumerate(deltas):
        b.record(d, tid=100 + i, nr=i)
    out = decode_pages(b.build(), FMT)
    assert out.ts.tolist() == (1_000_000 + np.cumsum(deltas)).tolist()
    assert out.tid.tolist() == [100, 101, 102, 103, 104]
    assert out.nr.tolist() == [0, 1, 2, 3, 4]
    assert out.tid.dtype == np.int32
    assert out.ts.dtype == np.int64
    assert out.nr.dtype == np.int64
    assert out.slow_pages == 0
    assert out.missed == 0


def test_full_page_of_records() -> None:
    b = PageBuilder(42)
    n = FMT.header.data_size // FMT.stride
    for i in range(n):
        b.record(1, tid=7, nr=i)
    out = decode_pages(b.build(), FMT)
    assert len(out.ts) == n
    assert out.ts[-1] == 42 + n
    assert out.slow_pages == 0


def test_time_extend_in_the_middle() -> None:
    big = (3 << 27) + 12345  # needs a time extend: more than 27 bits
    b = PageBuilder(10).record(2, 1, 0).record(3, 1, 1).time_extend(big).record(4, 1, 2).record(5, 1, 3)
    out = decode_pages(b.build(), FMT)
    assert out.ts.tolist() == [12, 15, 15 + big + 4, 15 + big + 9]
    assert out.nr.tolist() == [0, 1, 2, 3]
    assert out.slow_pages == 1


def test_absolute_time_stamp() -> None:
    b = PageBuilder(10).record(2, 1, 0).time_stamp(5_000_000_000).record(7, 1, 1)
    out = decode_pages(b.build(), FMT)
    assert out.ts.tolist() == [12, 5_000_000_007]


def test_padding_at_end_and_inside() -> None:
    b = PageBuilder(100).record(1, 9, 0).padding(24, delta=50).record(2, 9, 1)
    out = decode_pages(b.build(tail_padding=True), FMT)
    # a (discarded-event) padding record does not advance the clock (rb_update_read_stamp)
    assert out.ts.tolist() == [101, 103]
    assert out.nr.tolist() == [0, 1]


def test_null_padding_ends_page() -> None:
    b = PageBuilder(100).record(1, 9, 0)
    b.data += struct.pack("<I", 29)  # type PADDING with time_delta 0: rest of page is padding
    b.data += payload(9, 99)  # garbage after it must not be decoded
    out = decode_pages(b.build(), FMT)
    assert out.nr.tolist() == [0]


def test_other_event_type_skipped() -> None:
    b = PageBuilder(0).record(1, 5, 10).record(1, 5, 11, etype=EID + 1).record(1, 5, 12)
    out = decode_pages(b.build(), FMT)
    assert out.nr.tolist() == [10, 12]
    assert out.ts.tolist() == [1, 3]  # the skipped record's delta still counts


def test_other_event_of_another_size_skipped() -> None:
    b = PageBuilder(0).record(1, 5, 10)
    b.data += struct.pack("<I", (4 << 5) | 3) + struct.pack("<HBBi", EID + 7, 0, 0, 5) + bytes(4)
    b.record(2, 5, 12)
    out = decode_pages(b.build(), FMT)
    assert out.nr.tolist() == [10, 12]
    assert out.ts.tolist() == [1, 7]


def test_type_len_zero_record() -> None:
    b = PageBuilder(1000).record(1, 3, 1).long_record(10, 3, 2).record(100, 3, 3)
    out = decode_pages(b.build(), FMT)
    assert out.nr.tolist() == [1, 2, 3]
    assert out.ts.tolist() == [1001, 1011, 1111]
    assert out.tid.tolist() == [3, 3, 3]


def test_missed_events_stored_and_unstored() -> None:
    p1 = PageBuilder(0).record(1, 1, 1).build(flags=RB_MISSED_EVENTS, missed=1234)
    p2 = PageBuilder(50).record(1, 1, 2).build(flags=RB_MISSED_EVENTS)
    p3 = PageBuilder(90).record(1, 1, 3).build()
    out = decode_pages(p1 + p2 + p3, FMT)
    assert out.missed == 1234
    assert out.missed_pages == 2
    assert out.nr.tolist() == [1, 2, 3]
    assert out.ts.tolist() == [1, 51, 91]


def test_many_pages_mixed_fast_and_slow_in_order() -> None:
    pages = []
    expect_ts: list[int] = []
    for p in range(20):
        b = PageBuilder(p * 1_000_000)
        t = p * 1_000_000
        for i in range(30):
            if p % 3 == 1 and i == 10:
                b.time_extend(1 << 28)
                t += 1 << 28
            b.record(i, p, i)
            t += i
            expect_ts.append(t)
        pages.append(b.build(tail_padding=p % 4 == 0))
    out = decode_pages(b"".join(pages), FMT)
    assert out.ts.tolist() == expect_ts
    assert out.tid.tolist() == [p for p in range(20) for _ in range(30)]
    assert out.pages == 20


def test_negative_and_large_ids() -> None:
    b = PageBuilder(0).record(1, -1, -1).record(1, 2**31 - 1, 2**40)
    out = decode_pages(b.build(), FMT)
    assert out.nr.tolist() == [-1, 2**40]
    assert out.tid.tolist() == [-1, 2**31 - 1]


# args[0] as the kernel stores it (unsigned long): fds, AT_FDCWD (-100), -1, and values above 2**63
ARG0S = [3, 0, 2**31 - 1, 2**64 - 100, 2**64 - 1, 2**63 + 5, 1 << 40]
ARG0_INT64 = [3, 0, 2**31 - 1, -100, -1, -(2**63) + 5, 1 << 40]


def test_arg0_decoded_on_the_fast_path() -> None:
    b = PageBuilder(0)
    for i, a in enumerate(ARG0S):
        b.record(1, 100 + i, i, arg0=a)
    out = decode_pages(b.build(), FMT)
    assert out.slow_pages == 0
    assert out.arg0 is not None
    assert out.arg0.dtype == np.int64
    assert out.arg0.tolist() == ARG0_INT64
    assert out.nr.tolist() == list(range(len(ARG0S)))


def test_arg0_decoded_on_the_slow_path_and_merged_in_order() -> None:
    pages = []
    expect: list[int] = []
    for p in range(6):
        b = PageBuilder(p * 1000)
        for i, a in enumerate(ARG0S):
            if p % 2 and i == 3:
                b.time_extend(1 << 28)  # the rest of this page goes through the Python walk
            if p == 5 and i == 5:
                b.long_record(1, 7, 99, arg0=a)
            else:
                b.record(1, p, i, arg0=a)
            expect.append(ARG0_INT64[i])
        pages.append(b.build())
    data = b"".join(pages)
    out = decode_pages(data, FMT)
    assert out.slow_pages >= 3
    assert out.arg0 is not None
    assert out.arg0.tolist() == expect
    ref = decode_pages_reference(data, FMT)
    assert ref.arg0 is not None
    assert ref.arg0.tolist() == expect
    assert ref.nr.tolist() == out.nr.tolist()


def test_format_without_args_decodes_no_arg0() -> None:
    text = "\n".join(line for line in SYS_ENTER_FORMAT.splitlines() if "args" not in line or "print" in line)
    fmt = parse_sys_enter_format(text, parse_header_page(HEADER_PAGE))
    assert fmt.args_offset == -1
    page = PageBuilder(0).record(1, 5, 1, arg0=7).build()
    assert decode_pages(page, fmt).arg0 is None
    assert decode_pages_reference(page, fmt).arg0 is None


def test_empty_and_zero_pages() -> None:
    assert len(decode_pages(b"", FMT).ts) == 0
    out = decode_pages(bytes(PAGE * 3), FMT)
    assert len(out.ts) == 0
    assert out.pages == 3


def test_bigger_subbuffer() -> None:
    fmt = FMT.with_page_size(16384)
    b = PageBuilder(5)
    n = fmt.header.data_size // fmt.stride
    for i in range(n):
        b.record(1, 1, i)
    data = bytes(b.data)
    page = struct.pack("<Qq", 5, len(data)) + data
    out = decode_pages(page + bytes(16384 - len(page)), fmt)
    assert len(out.nr) == n
    assert out.ts[-1] == 5 + n


@pytest.mark.parametrize("cut", [1, 5, 67])
def test_truncated_commit_does_not_overrun(cut: int) -> None:
    b = PageBuilder(0).record(1, 1, 1).record(1, 1, 2)
    page = bytearray(b.build())
    struct.pack_into("<q", page, 8, len(b.data) - cut)
    out = decode_pages(bytes(page), FMT)
    assert out.nr.tolist() == [1]


STATS = """\
entries: 12
overrun: 345
commit overrun: 6
bytes: 4096
oldest event ts:  1234.567890
now ts:  1240.000001
dropped events: 7
read events: 89
"""


def test_parse_stats_reports_each_loss_counter() -> None:
    st = parse_stats(STATS)
    assert (st.entries, st.overrun, st.commit_overrun, st.dropped_events, st.read_events) == (12, 345, 6, 7, 89)
    assert st.lost == 345 + 6 + 7


def test_instance_on_a_non_tracefs_dir_raises_capture_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="cannot create tracefs instance"):
        TracefsInstance("mltest", root=tmp_path).open()


def test_bad_instance_name_rejected() -> None:
    with pytest.raises(CaptureError):
        TracefsInstance("../x")
