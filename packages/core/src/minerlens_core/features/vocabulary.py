"""The syscall vocabulary: syscall *names* are the unit of every feature.

Version "1" is the sorted union of the x86_64 and arm64 table names followed by ``"other"`` (the
last index), which takes every number or name the tables do not know. Because features are indexed
by name, ``read`` is the same feature whether a trace came from x86_64 (nr 0) or arm64 (nr 63).

The vocabulary is *pinned*: ``VOCAB_DIGEST_V1`` is the sha256 of the names, checked by the tests, so
regenerating the syscall tables with new names fails loudly instead of silently shifting every
feature index under already-trained models; such a change needs ``VOCAB_VERSION`` bumped.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable
from functools import cache

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from minerlens_core.syscalls import Arch, table

VOCAB_VERSION = "1"
VOCAB_DIGEST_V1 = "af5e06652a575fd9b846e010db9cbb098a1595139548cbfb4c318268ace10ccf"
OTHER = "other"

IdArray = npt.NDArray[np.int16]


def _build() -> tuple[str, ...]:
    names: set[str] = set()
    for arch in Arch:
        names.update(table(arch).values())
    names.discard(OTHER)
    return (*sorted(names), OTHER)


VOCABULARY: tuple[str, ...] = _build()
"""Feature order of every per-syscall feature group: ``VOCABULARY[i]`` is the name of index ``i``."""
VOCAB_SIZE = len(VOCABULARY)
OTHER_ID = VOCAB_SIZE - 1
_INDEX: dict[str, int] = {name: i for i, name in enumerate(VOCABULARY)}


def vocab_digest(names: Iterable[str] = VOCABULARY) -> str:
    """sha256 over the newline-joined names: identifies the vocabulary in feature specs."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def index_of(name: str) -> int:
    """Vocabulary index of a syscall name; accepts ``sys_enter_``/``sys_`` prefixes, else ``other``."""
    if name in _INDEX:
        return _INDEX[name]
    bare = name.removeprefix("sys_enter_").removeprefix("sys_")
    return _INDEX.get(bare, OTHER_ID)


def name_of(index: int) -> str:
    return VOCABULARY[index]


def ids_of(names: Iterable[str]) -> IdArray:
    """Vocabulary indices of syscall names (small inputs; traces use ``ids_from_names``)."""
    return np.fromiter((index_of(n) for n in names), dtype=np.int16)


@cache
def _lut(arch: Arch) -> IdArray:
    """nr -> index table for one arch; the extra last slot catches out-of-range numbers."""
    tab = table(arch)
    lut = np.full(max(tab) + 2, OTHER_ID, dtype=np.int16)
    for nr, name in tab.items():
        lut[nr] = _INDEX[name]
    lut.flags.writeable = False
    return lut


def ids_from_nr(nr: npt.ArrayLike, arch: Arch) -> IdArray:
    """Vectorised syscall number -> vocabulary index for one architecture (unknown -> ``other``)."""
    lut = _lut(arch)
    a = np.asarray(nr, dtype=np.int64)
    oob = len(lut) - 1
    return lut[np.where((a >= 0) & (a < oob), a, oob)]


def ids_from_names(names: pa.Array | pa.ChunkedArray) -> IdArray:
    """Vectorised name column -> vocabulary index: each distinct name is looked up once."""
    if isinstance(names, pa.ChunkedArray):
        names = names.combine_chunks() if names.num_chunks != 1 else names.chunk(0)
    if len(names) == 0:
        return np.zeros(0, dtype=np.int16)
    enc = names if pa.types.is_dictionary(names.type) else pc.dictionary_encode(names)
    lut = np.array([index_of(str(n)) for n in enc.dictionary.to_pylist()] + [OTHER_ID], dtype=np.int16)
    codes: npt.NDArray[np.int64] = enc.indices.fill_null(len(lut) - 1).to_numpy(zero_copy_only=False)
    return lut[codes]


@cache
def name_hashes() -> npt.NDArray[np.uint64]:
    """A stable 32-bit hash (crc32) of each vocabulary name, the input of the n-gram hash.

    Hashing names rather than indices keeps n-gram buckets unchanged when a future vocabulary
    inserts names; crc32 is fixed by the zlib spec, unlike Python's randomised ``hash()``.
    """
    out = np.array([zlib.crc32(n.encode()) for n in VOCABULARY], dtype=np.uint64)
    out.flags.writeable = False
    return out


def check_pinned() -> None:
    """Raise if the tables changed the names of vocabulary version "1" (run by the tests)."""
    got = vocab_digest()
    if got != VOCAB_DIGEST_V1:
        msg = f"syscall vocabulary changed (digest {got}); bump VOCAB_VERSION and re-pin VOCAB_DIGEST_V1"
        raise RuntimeError(msg)
