"""The proof-of-work functions, recomputed in Python for the pool's share verification.

Each algorithm hashes a job blob with the miner's 4-byte little-endian nonce at ``nonce_offset``; a hash
is a share when its last 8 bytes, read as a little-endian integer, are below the job's 64-bit target
(the comparison XMRig makes). Independent implementations check the C miner: ``hashlib`` for
double-SHA-256 and scrypt, the ``randomx`` package (the same RandomX v1.1.10 as librandomx) for rx/0.
The CryptoNight-like hash has no other implementation: it is checked through the same C code, built
as a shared library and called with ctypes.
"""

from __future__ import annotations

import ctypes
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from minerlens_lab.miners.build import build_cnlike_library

MAX64 = 0xFFFF_FFFF_FFFF_FFFF
MAX32 = 0xFFFF_FFFF


@dataclass(frozen=True)
class Algorithm:
    name: str
    """the stratum name (XMRig's ``algo``)"""
    blob_len: int
    nonce_offset: int
    seeded: bool
    start_diff: int
    """the pool's first difficulty: about one share a second from one thread of this lab's 2-core machine"""
    family: str


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("rx/0", 76, 39, True, 24, "miner-randomx"),
        Algorithm("cn-like", 76, 39, False, 48, "miner-cryptonight"),
        Algorithm("sha256d", 80, 76, False, 1_500_000, "miner-sha256d"),
        Algorithm("scrypt", 80, 76, False, 3_000, "miner-scrypt"),
    )
}


def compact_target(diff: int) -> str:
    """XMRig's 4-byte target for a difficulty, as little-endian hex."""
    compact = max(1, MAX32 // max(1, diff))
    return compact.to_bytes(4, "little").hex()


def target_from_compact(compact_hex: str) -> int:
    """The 64-bit target a miner derives from a 4-byte one (same arithmetic as the C miner)."""
    compact = int.from_bytes(bytes.fromhex(compact_hex), "little")
    if compact == 0:
        return 0
    return MAX64 // max(1, MAX32 // compact)


def meets_target(digest: bytes, target: int) -> bool:
    return int.from_bytes(digest[24:32], "little") < target


def with_nonce(blob: bytes, algo: Algorithm, nonce: bytes) -> bytes:
    off = algo.nonce_offset
    return blob[:off] + nonce + blob[off + 4 :]


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def scrypt_ltc(data: bytes) -> bytes:
    """Litecoin's proof of work: scrypt(N=1024, r=1, p=1) of the header, salted with itself."""
    return hashlib.scrypt(data, salt=data, n=1024, r=1, p=1, dklen=32)


class RandomXHasher:
    """Light-mode RandomX VMs, one per seed (a few kept); calls are serialised per VM."""

    def __init__(self, keep: int = 2) -> None:
        self._keep = keep
        self._vms: dict[bytes, tuple[threading.Lock, Callable[[bytes], bytes]]] = {}
        self._lock = threading.Lock()

    def _vm(self, seed: bytes) -> tuple[threading.Lock, Callable[[bytes], bytes]]:
        with self._lock:
            found = self._vms.get(seed)
            if found is None:
                import randomx  # the PyPI package (optional dependency "pow")

                found = (threading.Lock(), randomx.RandomX(seed, full_mem=False))
                self._vms[seed] = found
                while len(self._vms) > self._keep:
                    self._vms.pop(next(iter(self._vms)))
            return found

    def prepare(self, seed: bytes) -> None:
        self._vm(seed)

    def __call__(self, data: bytes, seed: bytes) -> bytes:
        lock, vm = self._vm(seed)
        with lock:
            return bytes(vm(data))


class CnLikeHasher:
    """The CryptoNight-like hash through the miner's own C code (ctypes releases the GIL during the call)."""

    def __init__(self, cache_dir: Path) -> None:
        self._cache_dir = cache_dir
        self._fn: Callable[..., int] | None = None
        self._lock = threading.Lock()

    def _load(self) -> Callable[..., int]:
        with self._lock:
            if self._fn is None:
                lib = ctypes.CDLL(str(build_cnlike_library(self._cache_dir)))
                fn = lib.cnlike_hash_alloc
                fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
                fn.restype = ctypes.c_int
                self._fn = fn
            return self._fn

    def __call__(self, data: bytes) -> bytes:
        out = ctypes.create_string_buffer(32)
        if self._load()(data, len(data), out) != 0:
            msg = "cnlike_hash_alloc: out of memory"
            raise MemoryError(msg)
        return out.raw


class Verifier:
    """Recomputes the proof of work of any supported algorithm."""

    def __init__(self, cache_dir: Path) -> None:
        self.randomx = RandomXHasher()
        self.cnlike = CnLikeHasher(cache_dir)

    def hash(self, algo: str, data: bytes, seed: bytes = b"") -> bytes:
        if algo == "sha256d":
            return sha256d(data)
        if algo == "scrypt":
            return scrypt_ltc(data)
        if algo == "rx/0":
            return self.randomx(data, seed)
        if algo == "cn-like":
            return self.cnlike(data)
        msg = f"unsupported algorithm {algo!r}"
        raise ValueError(msg)
