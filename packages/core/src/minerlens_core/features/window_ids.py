"""The window's own syscalls behind a feature: ``WindowIds`` names the pairs/triples of a hashed n-gram bucket
from the window's ids (or, without them, from its ``freq.*`` values); a bare bucket number is never a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from minerlens_core.features.ngrams import ngram_buckets
from minerlens_core.features.spec import FeatureParams, FeatureSpec
from minerlens_core.features.vectorize import cheap_mask
from minerlens_core.features.vocabulary import VOCABULARY

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
NGRAM_GROUPS = {"ngram2": 2, "ngram2_nc": 2, "ngram3_nc": 3}
"""The hashed n-gram feature groups and their n."""
_NAME_INDEX = {n: i for i, n in enumerate(VOCABULARY)}


class WindowIds:
    """What names the syscalls behind a feature: the window's ids and/or its feature vector.

    ``ids`` are the window's syscall ids (``Window.ids``) or its non-cheap sequence (``window_sequence`` /
    ``FeatureWindow.sequence``; then full-sequence pair buckets are named from non-cheap calls, which
    is approximate). ``vector`` (laid out as ``names``, by default the spec's) lets n-gram buckets be
    named without ids: the pairs/triples of the window's most frequent syscalls that hash to the bucket.
    """

    def __init__(
        self,
        ids: npt.ArrayLike | None,
        spec: FeatureSpec | FeatureParams | None = None,
        max_names: int = 2,
        *,
        vector: npt.ArrayLike | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        params = spec.params if isinstance(spec, FeatureSpec) else spec or FeatureParams()
        self.params = params
        self.buckets = params.buckets
        self.max_names = max_names
        self.full: I64 = _valid_ids(ids)
        self.nocheap: I64 = self.full[~cheap_mask(params)[self.full]]
        self._members: dict[tuple[str, int], tuple[list[str], bool]] = {}
        self._hashed: dict[tuple[int, bool], I64] = {}
        self._ranked: dict[bool, tuple[tuple[int, float], ...]] = {}
        self._vector = None if vector is None else np.asarray(vector, dtype=np.float64).ravel()
        self._names = tuple(names) if names is not None else (spec.names if isinstance(spec, FeatureSpec) else ())

    def _shares(self, nocheap: bool) -> tuple[tuple[int, float], ...]:
        """(syscall id, share) of the window's syscalls from its ``freq.*`` (``freq_nocheap.*``) values, largest
        first; empty without a vector."""
        got = self._ranked.get(nocheap)
        if got is None:
            got = ()
            x = self._vector
            if x is not None and len(self._names) == len(x):
                cols, sids = _freq_columns(self._names)[int(nocheap)]
                vals = x[cols]
                keep = np.flatnonzero(np.isfinite(vals) & (vals > 0))
                order = keep[np.argsort(-vals[keep], kind="stable")]
                got = tuple(zip(sids[order].tolist(), vals[order].tolist(), strict=True))
            self._ranked[nocheap] = got
        return got

    def ngram_members(self, group: str, bucket: int) -> tuple[list[str], bool]:
        """(the pairs/triples behind ``bucket`` of ``group``, True when taken from the window's own calls)."""
        key = (group, bucket)
        got = self._members.get(key)
        if got is None:
            got = self._members[key] = self._find(group, bucket)
        return got

    def _find(self, group: str, bucket: int) -> tuple[list[str], bool]:
        n = NGRAM_GROUPS.get(group)
        if n is None:
            return [], False
        nocheap = group.endswith("_nc")
        seq = self.nocheap if nocheap else self.full
        if len(seq) >= n:
            if (n, nocheap) not in self._hashed:
                self._hashed[(n, nocheap)] = ngram_buckets(seq, n, self.buckets)
            hits = np.flatnonzero(self._hashed[(n, nocheap)] == bucket)
            if len(hits):
                keys = np.zeros(len(hits), np.int64)
                for k in range(n):  # one integer per n-gram: ids in base len(VOCABULARY)
                    keys = keys * len(VOCABULARY) + seq[hits + k]
                _, first, counts = np.unique(keys, return_index=True, return_counts=True)
                top = np.lexsort((first, -counts))[: self.max_names]  # most frequent, then first seen
                return [_arrow(seq[hits[first[t]] : hits[first[t]] + n].tolist()) for t in top.tolist()], True
        ranked = self._shares(nocheap) or self._shares(False)
        if not ranked:
            return [], False
        return _likely_members(ranked, n, bucket, self.buckets)[: self.max_names], False

    def top_syscall(self, nocheap: bool) -> str:
        seq = self.nocheap if nocheap else self.full
        if len(seq):
            return VOCABULARY[int(np.bincount(seq).argmax())]
        shares = self._shares(nocheap)
        return VOCABULARY[shares[0][0]] if shares else ""


def _valid_ids(ids: npt.ArrayLike | None) -> I64:
    """Vocabulary ids of ``ids``; anything else (out of range, not a number) is dropped."""
    try:
        arr = np.asarray([] if ids is None else ids).ravel()
        if arr.dtype.kind not in "iu":
            arr = np.asarray(arr, dtype=np.float64)
            arr = arr[np.isfinite(arr) & (np.abs(arr) < 1 << 31)]
    except (TypeError, ValueError):
        return np.zeros(0, np.int64)
    full = arr.astype(np.int64)
    out: I64 = full[(full >= 0) & (full < len(VOCABULARY))]
    return out


@lru_cache(maxsize=16)
def _freq_columns(names: tuple[str, ...]) -> tuple[tuple[I64, I64], tuple[I64, I64]]:
    """(columns, syscall ids) of ``freq.*`` and of ``freq_nocheap.*`` in a layout of feature names."""
    out = []
    for prefix in ("freq.", "freq_nocheap."):
        found = [(j, _NAME_INDEX.get(n[len(prefix) :])) for j, n in enumerate(names) if n.startswith(prefix)]
        pairs = [(j, sid) for j, sid in found if sid is not None]
        out.append((np.array([j for j, _ in pairs], np.int64), np.array([s for _, s in pairs], np.int64)))
    return out[0], out[1]


def _arrow(ids: Sequence[int]) -> str:
    return "→".join(VOCABULARY[i] for i in ids)


def _likely_members(shares: tuple[tuple[int, float], ...], n: int, bucket: int, buckets: int) -> list[str]:
    """Pairs/triples of the window's most frequent syscalls hashing to ``bucket``, likeliest first."""
    ids, weight, hashed = _candidates(shares[: 24 if n == 2 else 12], n, buckets)
    hit = np.flatnonzero(hashed == bucket)
    order = hit[np.argsort(-weight[hit], kind="stable")]
    return [_arrow(ids[h].tolist()) for h in order.tolist()]


@lru_cache(maxsize=64)
def _candidates(shares: tuple[tuple[int, float], ...], n: int, buckets: int) -> tuple[I64, F64, I64]:
    """Every n-gram of the syscalls in ``shares`` (the window's top ones): ids, share product, bucket."""
    top = shares
    sids = np.array([s for s, _ in top], dtype=np.int64)
    w = np.array([v for _, v in top], dtype=np.float64)
    grid = np.indices((len(top),) * n).reshape(n, -1).T
    ids = sids[grid]
    with np.errstate(over="ignore"):  # shares of a hostile vector may be huge: they only rank
        weight = w[grid].prod(axis=1)
    return ids, weight, ngram_buckets(ids.ravel(), n, buckets)[::n]
