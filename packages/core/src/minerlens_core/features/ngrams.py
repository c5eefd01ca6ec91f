"""Sequence primitives: stable n-gram hashing, per-segment reductions and the paper's raw frames.

"Segments" are windows laid end to end in one flat array (``seg[i]`` = window of event ``i``,
non-decreasing), so a whole batch of windows is reduced with a handful of numpy calls.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

from minerlens_core.features.vocabulary import name_hashes

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

_POS_MULT = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5)


@cache
def _position_tables(n: int) -> tuple[U64, ...]:
    """crc32(name) * a fixed odd constant per n-gram position (mod 2^64): order-sensitive, stable."""
    if not 1 <= n <= len(_POS_MULT):
        msg = f"n-grams of length 1..{len(_POS_MULT)} are supported, not {n}"
        raise ValueError(msg)
    return tuple(name_hashes() * np.uint64(_POS_MULT[k]) for k in range(n))


def _finalise(h: U64) -> U64:
    """splitmix64 finaliser: spreads the xor of position terms over all 64 bits."""
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


def ngram_buckets(ids: npt.NDArray[np.integer], n: int, buckets: int) -> I64:
    """Bucket in ``[0, buckets)`` of every consecutive n-gram of ``ids`` (length ``len(ids) - n + 1``).

    The hash depends only on the syscall *names* and fixed constants, never on the process
    (Python's ``hash()`` is salted per process), so training and serving agree bucket for bucket.
    """
    m = len(ids) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.int64)
    tabs = _position_tables(n)
    h = tabs[0][ids[:m]].copy()
    for k in range(1, n):
        h ^= tabs[k][ids[k : k + m]]
    return (_finalise(h) % np.uint64(buckets)).astype(np.int64)


def segment_ngram_hist(ids: npt.NDArray[np.integer], seg: I64, nseg: int, n: int, buckets: int) -> F64:
    """Per segment: share of its n-grams (not crossing segment borders) falling in each bucket."""
    out = np.zeros((nseg, buckets))
    b = ngram_buckets(ids, n, buckets)
    if len(b) == 0:
        return out
    inside = seg[: len(b)] == seg[n - 1 :]
    s = seg[: len(b)][inside]
    out += np.bincount(s * buckets + b[inside], minlength=nseg * buckets).reshape(nseg, buckets)
    total = out.sum(axis=1, keepdims=True)
    np.divide(out, total, out=out, where=total > 0)
    return out


def segment_max(values: npt.NDArray[np.number], seg: I64, nseg: int) -> F64:
    """Maximum of ``values`` per segment (0 for empty segments); ``seg`` must be non-decreasing."""
    out = np.zeros(nseg)
    if len(values) == 0:
        return out
    starts = np.searchsorted(seg, np.arange(nseg))
    nonempty = np.bincount(seg, minlength=nseg) > 0
    out[nonempty] = np.maximum.reduceat(values, starts[nonempty])
    return out


def segment_quantiles(sorted_values: F64, seg: I64, nseg: int, qs: tuple[float, ...]) -> F64:
    """Quantiles (linear interpolation, as ``np.quantile``) of values sorted within each segment.

    Returns shape ``(nseg, len(qs))``, NaN for empty segments.
    """
    counts = np.bincount(seg, minlength=nseg)
    starts = np.cumsum(counts) - counts
    out = np.full((nseg, len(qs)), np.nan)
    ok = counts > 0
    if not ok.any():
        return out
    c, s = counts[ok], starts[ok]
    for j, q in enumerate(qs):
        pos = q * (c - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, c - 1)
        frac = pos - lo
        out[ok, j] = sorted_values[s + lo] * (1 - frac) + sorted_values[s + hi] * frac
    return out


def segment_runs(ids: npt.NDArray[np.integer], seg: I64, nseg: int) -> F64:
    """Longest run of one repeated syscall per segment (in events)."""
    if len(ids) == 0:
        return np.zeros(nseg)
    change = (ids[1:] != ids[:-1]) | (seg[1:] != seg[:-1])
    starts = np.concatenate(([0], np.flatnonzero(change) + 1))
    lengths = np.diff(np.append(starts, len(ids)))
    return segment_max(lengths, seg[starts], nseg)


def frames(x: npt.ArrayLike | object, n: int = 35, stride: int = 1) -> npt.NDArray[np.int16]:
    """The paper's raw n-gram frames: every ``n`` consecutive vocabulary ids, one frame per ``stride``.

    ``x`` is a ``Window`` (its ``ids``) or a 1-D id sequence. Returns a read-only ``(k, n)`` view,
    ``k = (len - n) // stride + 1`` (0 rows when the sequence is shorter than ``n``).
    """
    seq = np.asarray(getattr(x, "ids", x), dtype=np.int16)
    if seq.ndim != 1 or n < 1 or stride < 1:
        msg = "frames need a 1-D sequence, n >= 1 and stride >= 1"
        raise ValueError(msg)
    if len(seq) < n:
        return np.zeros((0, n), dtype=np.int16)
    return np.lib.stride_tricks.sliding_window_view(seq, n)[::stride]
