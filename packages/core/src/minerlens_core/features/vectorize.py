"""Feature vectors of windows, laid out as ``FeatureSpec.names`` (see ``docs/features.md``).

``vectorize_many`` concatenates a batch of windows into flat arrays and computes every group with a
few numpy reductions (bincount / reduceat / one sort), so the per-window Python cost is a few µs.
"No-cheap" (``_nc``) features drop the syscalls in ``params.cheap`` first: padding a window with
getpid/nanosleep dilutes ``freq.*`` but leaves ``freq_nocheap.*`` and ``*_nc`` unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from minerlens_core.features.ngrams import segment_max, segment_ngram_hist, segment_quantiles, segment_runs
from minerlens_core.features.spec import FEATURE_VERSION, FeatureParams, FeatureSpec, feature_groups
from minerlens_core.features.vocabulary import VOCAB_SIZE, VOCABULARY
from minerlens_core.features.windows import Window
from minerlens_core.schemas.resources import FdKind
from minerlens_core.syscalls.io import FD_DATA_SYSCALLS, FILE_ONLY, SOCKET_ONLY

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
V = VOCAB_SIZE
assert V <= 1 << 9, "thread keys pack the syscall id in 9 bits"
_MAX_BATCH_EVENTS = 1 << 16  # ~64k events per internal batch: keeps the working set in cache (measured)
_MAX_BATCH_WINDOWS = 4096  # window numbers are packed in the top bits of int64 keys
_DT_BITS = 40  # inter-arrival times are clipped at 2^40 ns (~18 min) for the per-window sort


@dataclass(frozen=True)
class _Layout:
    cheap: npt.NDArray[np.bool_]
    nc_cols: I64
    rate_cols: list[I64]
    widths: dict[str, int]
    fd_data: npt.NDArray[np.bool_]
    socket_only: npt.NDArray[np.bool_]
    file_only: npt.NDArray[np.bool_]


@cache
def _layout(params: FeatureParams, version: str = FEATURE_VERSION) -> _Layout:
    vocab = np.array(VOCABULARY)
    cheap = np.isin(vocab, params.cheap)
    rates = [np.flatnonzero(np.isin(vocab, names)) for _, names in params.rates]
    widths = {g: len(names) for g, names in feature_groups(params, version)}
    return _Layout(
        cheap,
        np.flatnonzero(~cheap),
        rates,
        widths,
        np.isin(vocab, sorted(FD_DATA_SYSCALLS)),
        np.isin(vocab, sorted(SOCKET_ONLY)),
        np.isin(vocab, sorted(FILE_ONLY)),
    )


def cheap_mask(params: FeatureParams) -> npt.NDArray[np.bool_]:
    """Boolean mask over vocabulary ids: True for the syscalls in ``params.cheap``."""
    return _layout(params).cheap


def _entropy(counts: F64, total: F64) -> F64:
    """Shannon entropy (bits) of each row's syscall distribution."""
    p = counts / np.maximum(total, 1)[:, None]
    logp = np.log2(p, out=np.zeros_like(p), where=p > 0)
    return np.asarray(-(p * logp).sum(axis=1))


def _share(x: F64, total: F64) -> F64:
    return np.divide(x, total, out=np.zeros_like(x), where=total > 0)


def _time_block(ws: Sequence[Window], hist: F64, nc: F64, lay: _Layout) -> F64:
    """has_time, rates (per second of window span) and inter-arrival quantiles (µs); NaN without time."""
    nw = len(ws)
    has = np.array([w.has_time for w in ws])
    span = np.array([(w.end_ns or 0) - (w.start_ns or 0) for w in ws], dtype=np.float64)
    secs = np.where(has & (span >= 1_000), span / 1e9, np.nan)  # < 1 µs: timestamps too coarse
    cols = [has.astype(np.float64), hist.sum(axis=1) / secs, nc / secs]
    iat = np.full((nw, 2), np.nan)
    timed = [i for i, w in enumerate(ws) if w.ts_ns is not None and w.count > 1]
    if timed:
        ts = np.concatenate([ws[i].ts_ns for i in timed])
        seg = np.repeat(np.arange(len(timed)), [ws[i].count for i in timed])
        inside = seg[1:] == seg[:-1]
        dt = np.clip(np.diff(ts)[inside], 0, (1 << _DT_BITS) - 1)
        key = np.sort((seg[1:][inside] << _DT_BITS) | dt)
        vals = (key & ((1 << _DT_BITS) - 1)).astype(np.float64) / 1e3
        iat[timed] = segment_quantiles(vals, key >> _DT_BITS, len(timed), (0.5, 0.9))
    cols += [iat[:, 0], iat[:, 1]]
    cols += [hist[:, c].sum(axis=1) / secs for c in lay.rate_cols]
    return np.column_stack(cols)


def _runs(sorted_keys: I64) -> tuple[I64, I64]:
    """Distinct values of a sorted array and how often each occurs (none for an empty array)."""
    if len(sorted_keys) == 0:
        return sorted_keys, sorted_keys
    starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    return sorted_keys[starts], np.diff(np.append(starts, len(sorted_keys)))


def _thread_block(seg: I64, keep: npt.NDArray[np.bool_], ids: I64, tids: I64, lens: F64, p: FeatureParams) -> F64:
    """Threads per window, busiest thread's share, threads dominated by one (no-cheap) syscall.

    Two sorts of packed keys (window << 32 | tid, and window << 41 | tid << 9 | syscall) give
    per-thread and per-thread-per-syscall counts without any per-window Python loop.
    """
    nw = len(lens)
    threads_k, per_thread = _runs(np.sort((seg << 32) | tids))
    tseg = threads_k >> 32
    threads = np.bincount(tseg, minlength=nw).astype(np.float64)
    busiest = segment_max(per_thread, tseg, nw)
    k3, c3 = _runs(np.sort(((seg << 41) | (tids << 9) | ids)[keep]))
    pair = k3 >> 9
    pstart = np.flatnonzero(np.concatenate(([True], pair[1:] != pair[:-1]))) if len(pair) else pair
    dominated = np.zeros(nw)
    if len(pstart):
        total, top = np.add.reduceat(c3, pstart), np.maximum.reduceat(c3, pstart)
        dom = (total >= p.thread_min_events) & (top > p.dominated_share * total)
        dominated = np.bincount(pair[pstart][dom] >> 32, minlength=nw).astype(np.float64)
    return np.column_stack([threads, _share(busiest, lens), dominated, _share(dominated, threads)])


def _spans(ws: Sequence[Window]) -> F64:
    """Seconds each window spans (NaN without time or when under 1 µs)."""
    has = np.array([w.has_time for w in ws])
    span = np.array([(w.end_ns or 0) - (w.start_ns or 0) for w in ws], dtype=np.float64)
    return np.where(has & (span >= 1_000), span / 1e9, np.nan)


def _log_per(n: F64, cpu_s: F64) -> F64:
    """log10(1 + calls per CPU-second); a window that used (almost) no CPU counts as 1 ms of it."""
    return np.log10(1 + n / np.maximum(cpu_s, 1e-3))


def _res_block(ws: Sequence[Window], n: F64, nc: F64, secs: F64) -> F64:
    """What the pod (or process) used over the window; NaN (and ``res.has`` = 0) without samples."""
    out = np.full((len(ws), 16), np.nan)
    out[:, 0] = 0.0
    for i, w in enumerate(ws):
        r = w.res
        if r is None:
            continue
        f = r.fds
        fds = (f.socket_inet - f.socket_listen, f.socket_other, f.file, f.pipe, f.anon) if f else (np.nan,) * 5
        out[i] = (
            1.0, r.cpu_cores, r.throttled_cores, r.threads, r.running,
            r.running / r.threads if r.threads > 0 else np.nan, np.nan, np.nan,
            np.log10(1 + r.memory_bytes / 2**20), np.log10(1 + r.hugetlb_bytes / 2**20),
            *fds, r.processes,
        )  # fmt: skip
    cpu_s = out[:, 1] * secs
    out[:, 6] = _log_per(n, cpu_s)
    out[:, 7] = _log_per(nc, cpu_s)
    return out


_SOCKET_KINDS = np.array([FdKind.SOCKET_INET, FdKind.SOCKET_OTHER], np.int8)
_IPC_KINDS = np.array([FdKind.PIPE, FdKind.ANON, FdKind.DEVICE], np.int8)


def _io_block(ws: Sequence[Window], ids: I64, seg: I64, nc: F64, secs: F64, lay: _Layout) -> F64:
    """Socket / inet / file / IPC calls: fd-kind tags where the source gave them, call names otherwise."""
    nw = len(ws)
    has = np.array([w.fdk is not None for w in ws])
    fdk = np.concatenate([w.fdk if w.fdk is not None else np.full(w.count, -1, np.int8) for w in ws])
    data = lay.fd_data[ids]
    sock = lay.socket_only[ids] | (data & np.isin(fdk, _SOCKET_KINDS))
    inet = data & (fdk == FdKind.SOCKET_INET)
    file = lay.file_only[ids] | (data & (fdk == FdKind.FILE))
    ipc = data & np.isin(fdk, _IPC_KINDS)
    counts = [np.bincount(seg[m], minlength=nw).astype(np.float64) for m in (sock, inet, file, ipc)]
    s, i, f, c = (_share(x, nc) for x in counts)
    unknown = np.where(has, 1.0, np.nan)
    return np.column_stack(
        [
            has.astype(np.float64),
            s,
            i * unknown,
            f,
            c * unknown,
            counts[0] / secs,
            counts[1] / secs * unknown,
            counts[2] / secs,
        ]
    )


def _batch(ws: Sequence[Window], spec: FeatureSpec) -> F32:
    p, lay, nw = spec.params, _layout(spec.params, spec.version), len(ws)
    lens = np.array([w.count for w in ws], dtype=np.int64)
    ids = np.concatenate([w.ids for w in ws]).astype(np.int64)
    tids = np.concatenate([w.tids for w in ws]).astype(np.int64) & 0xFFFFFFFF
    seg = np.repeat(np.arange(nw, dtype=np.int64), lens)
    hist = np.bincount(seg * V + ids, minlength=nw * V).reshape(nw, V).astype(np.float64)
    hnc = hist[:, lay.nc_cols]
    n, nc = lens.astype(np.float64), hnc.sum(axis=1)
    keep = ~lay.cheap[ids]
    ids_nc, seg_nc = ids[keep], seg[keep]
    stat = [
        np.log10(1 + n),
        (hist > 0).sum(axis=1),
        (hnc > 0).sum(axis=1),
        _entropy(hist, n),
        _entropy(hnc, nc),
        _share(segment_runs(ids, seg, nw), n),
        _share(segment_runs(ids_nc, seg_nc, nw), nc),
        _share(hist.max(axis=1), n),
        _share(hnc.max(axis=1, initial=0), nc),
    ]
    blocks = {
        "freq": _share(hist, n[:, None]),
        "freq_nocheap": _share(hnc, nc[:, None]),
        "cheap": _share(n - nc, n)[:, None],
        "ngram2": segment_ngram_hist(ids, seg, nw, 2, p.buckets),
        "ngram2_nc": segment_ngram_hist(ids_nc, seg_nc, nw, 2, p.buckets),
        "ngram3_nc": segment_ngram_hist(ids_nc, seg_nc, nw, 3, p.buckets),
        "stat": np.column_stack(stat),
        "thread": _thread_block(seg, keep, ids, tids, n, p),
        "time": _time_block(ws, hist, nc, lay),
    }
    if "res" in lay.widths:
        secs = _spans(ws)
        blocks["res"] = _res_block(ws, n, nc, secs)
        blocks["io"] = _io_block(ws, ids, seg, nc, secs, lay)
    out = np.empty((nw, spec.dim), dtype=np.float32)
    col = 0
    for group, width in lay.widths.items():
        block = blocks[group]
        if block.shape != (nw, width):
            msg = f"feature group {group}: got {block.shape[1]} columns, spec says {width}"
            raise AssertionError(msg)
        out[:, col : col + width] = block
        col += width
    return out


def vectorize_many(windows: Sequence[Window], spec: FeatureSpec | None = None) -> F32:
    """Feature matrix ``(len(windows), spec.dim)`` (float32), rows in the order of ``windows``."""
    spec = spec or FeatureSpec.default()
    ws = list(windows)
    if not ws:
        return np.zeros((0, spec.dim), dtype=np.float32)
    if any(w.count == 0 and w.res is None for w in ws):
        msg = "cannot vectorize an empty window (no syscall and no resource sample)"
        raise ValueError(msg)
    parts, lo, events = [], 0, 0
    for i, w in enumerate(ws):
        events += w.count
        if i + 1 - lo >= _MAX_BATCH_WINDOWS or events >= _MAX_BATCH_EVENTS or i + 1 == len(ws):
            parts.append(_batch(ws[lo : i + 1], spec))
            lo, events = i + 1, 0
    if len(parts) == 1:
        return parts[0]
    out: F32 = np.concatenate(parts, dtype=np.float32)
    return out


def vectorize(window: Window, spec: FeatureSpec | None = None) -> F32:
    """Feature vector ``(spec.dim,)`` (float32) of one window."""
    row: F32 = vectorize_many([window], spec)[0]
    return row
