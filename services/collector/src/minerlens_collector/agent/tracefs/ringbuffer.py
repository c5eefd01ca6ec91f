"""Decoder of ftrace ring-buffer sub-buffers (what one read() of ``trace_pipe_raw`` returns).

Page: ``u64 timestamp`` | ``local_t commit`` (data bytes; bit 31 RB_MISSED_EVENTS, bit 30
RB_MISSED_STORED: the missed count is an ``unsigned long`` right after the data) | data.
Record header: ``u32 type_len:5, time_delta:27``; type_len 1..28 = data of type_len*4 bytes,
0 = data length + 4 in array[0] (data from array[1]), 29 padding (array[0]+4 bytes; time_delta 0 =
rest of page), 30 time extend (delta = array[0] << 27 | time_delta), 31 absolute time stamp.
Semantics follow kernel/trace/ring_buffer.c (rb_event_length, rb_update_read_stamp): padding does
not advance the clock; data and time-extend records add their delta.

Fast path (numpy, many pages per call): assume every record is a sys_enter record of the usual
stride, check the headers at the predicted offsets; a page is correct up to its first mismatch
(each predicted header up to it is a real one), and the rest of that page is walked in Python.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from minerlens_collector.agent.tracefs.format import SysEnterFormat

RB_MISSED_EVENTS = 1 << 31
RB_MISSED_STORED = 1 << 30
COMMIT_MASK = (1 << 27) - 1  # as libtraceevent's kbuffer: sub-buffers are far smaller than 128 MiB
TYPE_PADDING, TYPE_TIME_EXTEND, TYPE_TIME_STAMP = 29, 30, 31
TS_SHIFT = 27
_TS_MSB = 0xF8 << 56

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]


@dataclass(slots=True)
class DecodedPages:
    ts: I64  # trace-clock ns
    tid: I32  # common_pid (the thread id)
    nr: I64  # syscall number (``id`` field)
    arg0: I64 | None = None  # ``args[0]`` (the fd of fd-taking calls), None when the format has no args
    pages: int = 0
    missed: int = 0  # events the page headers say were lost before the page (stored counts)
    missed_pages: int = 0  # pages flagged RB_MISSED_EVENTS (count stored or not)
    slow_pages: int = 0  # pages (partly) decoded by the Python walk


def _gather(u32: npt.NDArray[np.uint32], byte_off: I64, size: int, signed: bool) -> I64:
    """Little-endian integers of ``size`` bytes at ``byte_off`` (all offsets equal mod 4; 4/8-byte
    fields 4-byte aligned, 1/2-byte fields within one aligned word)."""
    out: I64
    if len(byte_off) == 0:
        out = np.zeros(0, np.int64)
        return out
    idx = byte_off >> 2
    word = u32[idx]
    if size == 8:
        out = word.astype(np.int64) | (u32[idx + 1].astype(np.int64) << 32)  # wraps to the signed value
    elif size == 4:
        out = word.view(np.int32).astype(np.int64) if signed else word.astype(np.int64)
    else:
        shift = np.uint32(8 * int(byte_off[0] & 3))
        out = ((word >> shift) & np.uint32((1 << (8 * size)) - 1)).astype(np.int64)
        if signed:
            out = np.where(out >= 1 << (8 * size - 1), out - (1 << (8 * size)), out)
    return out


_Walked = tuple[list[int], list[int], list[int], list[int]]


def _walk(page: bytes | memoryview, start: int, end: int, ts: int, fmt: SysEnterFormat) -> _Walked:
    """Python walk of data bytes ``start..end`` of one page; returns (ts, tid, nr, arg0) lists of sys_enter
    (arg0 stays empty when the format has no args)."""
    base = fmt.header.data_offset
    out_ts: list[int] = []
    out_tid: list[int] = []
    out_nr: list[int] = []
    out_arg0: list[int] = []
    unpack = struct.unpack_from
    type_fmt = {1: "<B", 2: "<H", 4: "<I"}[fmt.type_size]
    id_fmt = "<q" if fmt.id_size == 8 else "<i"
    arg_fmt = "<q" if fmt.arg_size == 8 else "<I"  # an 8-byte arg as int64 (what the numpy path gives)
    args_at = fmt.args_offset
    pos = start
    while pos + 4 <= end:
        (hdr,) = unpack("<I", page, base + pos)
        type_len, delta = hdr & 31, hdr >> 5
        if type_len == TYPE_PADDING:
            if delta == 0:
                break  # null event: the rest of the page is padding
            pos += unpack("<I", page, base + pos + 4)[0] + 4
            continue
        if type_len == TYPE_TIME_EXTEND:
            ts += (unpack("<I", page, base + pos + 4)[0] << TS_SHIFT) | delta
            pos += 8
            continue
        if type_len == TYPE_TIME_STAMP:
            abs_ts = (unpack("<I", page, base + pos + 4)[0] << TS_SHIFT) | delta
            if ts & _TS_MSB:  # rb_fix_abs_ts: only 59 bits are stored
                abs_ts |= ts & _TS_MSB
                if abs_ts < ts:
                    abs_ts += 1 << 59
            ts = abs_ts
            pos += 8
            continue
        if type_len:
            data, length = pos + 4, type_len * 4
        else:
            data, length = pos + 8, unpack("<I", page, base + pos + 4)[0] - 4
            if length < 0:
                break  # corrupt: stop rather than loop
        if data + length > end:
            break
        ts += delta
        d = base + data
        if length >= fmt.record_size and unpack(type_fmt, page, d + fmt.type_offset)[0] == fmt.event_id:
            out_ts.append(ts)
            out_tid.append(unpack("<i", page, d + fmt.pid_offset)[0])
            out_nr.append(unpack(id_fmt, page, d + fmt.id_offset)[0])
            if args_at >= 0:
                out_arg0.append(unpack(arg_fmt, page, d + args_at)[0])
        pos = data + length
    return out_ts, out_tid, out_nr, out_arg0


def _missed(buf: npt.NDArray[np.uint8], page: int, commit: int, length: int, fmt: SysEnterFormat) -> int:
    if not commit & RB_MISSED_STORED:
        return 0
    h = fmt.header
    at = page * h.page_size + h.data_offset + length
    size = h.commit_size
    if length + size > h.data_size:
        return 0
    return int.from_bytes(buf[at : at + size].tobytes(), "little")


def decode_pages(data: bytes | bytearray | memoryview, fmt: SysEnterFormat, n_pages: int | None = None) -> DecodedPages:
    """Decode ``n_pages`` consecutive sub-buffers of ``fmt.header.page_size`` bytes each."""
    h = fmt.header
    psize = h.page_size
    buf = np.frombuffer(data, dtype=np.uint8)
    n = len(buf) // psize if n_pages is None else n_pages
    if n == 0:
        empty = np.zeros(0, np.int64)
        return DecodedPages(empty, np.zeros(0, np.int32), empty, empty if fmt.args_offset >= 0 else None)
    buf = buf[: n * psize]
    u32 = buf.view("<u4")
    page_base = np.arange(n, dtype=np.int64) * psize
    page_ts = _gather(u32, page_base + h.ts_offset, 8, False)
    commit = u32[(page_base + h.commit_offset) >> 2].astype(np.int64)
    length = np.minimum(commit & COMMIT_MASK, h.data_size)

    stride, type_len = fmt.stride, fmt.type_len
    counts = length // stride if type_len else np.zeros(n, np.int64)
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    page_of = np.repeat(np.arange(n, dtype=np.int64), counts)
    k = np.arange(total, dtype=np.int64) - np.repeat(starts, counts)
    hoff = page_of * psize + (h.data_offset + k * stride)
    hdr = u32[hoff >> 2]
    bad = np.flatnonzero((hdr & np.uint32(31)) != type_len)
    limit = counts.copy()
    if len(bad):
        bad_pages, first = np.unique(page_of[bad], return_index=True)
        limit[bad_pages] = k[bad[first]]
    valid = k < limit[page_of] if len(bad) else None

    cs = np.cumsum((hdr >> np.uint32(5)).astype(np.int64))
    before = np.concatenate(([0], cs))[starts]  # sum of deltas of earlier pages
    ts = (page_ts - before)[page_of] + cs
    payload = hoff + 4
    ctype = _gather(u32, payload + fmt.type_offset, fmt.type_size, False)
    keep = ctype == fmt.event_id
    if valid is not None:
        keep &= valid
    out_ts = ts[keep]
    kept = payload[keep]
    out_tid = _gather(u32, kept + fmt.pid_offset, 4, True).astype(np.int32)
    out_nr = _gather(u32, kept + fmt.id_offset, fmt.id_size, True)
    out_arg0 = _gather(u32, kept + fmt.args_offset, fmt.arg_size, False) if fmt.args_offset >= 0 else None

    result = DecodedPages(out_ts, out_tid, out_nr, out_arg0, pages=n)
    flagged = np.flatnonzero(commit & RB_MISSED_EVENTS)
    result.missed_pages = len(flagged)
    result.missed = sum(_missed(buf, int(p), int(commit[p]), int(length[p]), fmt) for p in flagged)

    slow = np.flatnonzero((limit < counts) | (length - limit * stride > 0))
    if len(slow):
        _add_slow(result, buf, slow, limit, page_ts, cs, starts, length, page_of[keep], fmt)
    return result


def _add_slow(
    result: DecodedPages,
    buf: npt.NDArray[np.uint8],
    slow: I64,
    limit: I64,
    page_ts: I64,
    cs: I64,
    starts: I64,
    length: I64,
    fast_page: I64,
    fmt: SysEnterFormat,
) -> None:
    """Walk the tails of ``slow`` pages in Python and merge them in page order."""
    psize, stride = fmt.header.page_size, fmt.stride
    ts_l: list[int] = []
    tid_l: list[int] = []
    nr_l: list[int] = []
    arg_l: list[int] = []
    page_l: list[int] = []
    for p in slow.tolist():
        lim = int(limit[p])
        ts0 = int(page_ts[p]) + (int(cs[starts[p] + lim - 1] - (cs[starts[p] - 1] if starts[p] else 0)) if lim else 0)
        page = buf[p * psize : (p + 1) * psize].data
        t, i, r, a = _walk(page, lim * stride, int(length[p]), ts0, fmt)
        ts_l += t
        tid_l += i
        nr_l += r
        arg_l += a
        page_l += [p] * len(t)
    result.slow_pages = len(slow)
    if not ts_l:
        return
    pages = np.concatenate((fast_page, np.asarray(page_l, np.int64)))
    order = np.argsort(pages, kind="stable")
    result.ts = np.concatenate((result.ts, np.asarray(ts_l, np.int64)))[order]
    result.tid = np.concatenate((result.tid, np.asarray(tid_l, np.int32)))[order]
    result.nr = np.concatenate((result.nr, np.asarray(nr_l, np.int64)))[order]
    if result.arg0 is not None:
        result.arg0 = np.concatenate((result.arg0, np.asarray(arg_l, np.int64)))[order]


def decode_pages_reference(data: bytes | bytearray | memoryview, fmt: SysEnterFormat) -> DecodedPages:
    """Pure-Python walk of every page (the fallback path alone): a slow, simple reference."""
    psize = fmt.header.page_size
    h = fmt.header
    ts_l: list[int] = []
    tid_l: list[int] = []
    nr_l: list[int] = []
    arg_l: list[int] = []
    view = memoryview(data)
    n = len(view) // psize
    for p in range(n):
        page = view[p * psize : (p + 1) * psize]
        ts0 = struct.unpack_from("<Q", page, h.ts_offset)[0]
        length = min(struct.unpack_from("<I", page, h.commit_offset)[0] & COMMIT_MASK, h.data_size)
        t, i, r, a = _walk(page, 0, length, ts0, fmt)
        ts_l += t
        tid_l += i
        nr_l += r
        arg_l += a
    return DecodedPages(
        np.asarray(ts_l, np.int64),
        np.asarray(tid_l, np.int32),
        np.asarray(nr_l, np.int64),
        np.asarray(arg_l, np.int64) if fmt.args_offset >= 0 else None,
        pages=n,
        slow_pages=n,
    )
