"""Jobs and the simulated chain they come from.

A job is a block template's hashing blob for one connection: for Monero-style algorithms a real
hashing blob layout (major/minor version, varint timestamp, previous block id, the nonce at byte 39,
the transactions' tree root, the transaction count: 76 bytes, what XMRig expects and parses), for
Bitcoin-style ones an 80-byte header (nonce at byte 76). The chain has a height and a previous block
id; a new block moves both, a template refresh only changes the tree root (new transactions).
"""

from __future__ import annotations

import secrets
import struct
import time
from dataclasses import dataclass
from typing import Any

from minerlens_lab.miners.pow import Algorithm, compact_target

_MONERO_MAJOR = 16
_MONERO_MINOR = 16


def varint(n: int) -> bytes:
    """Monero's (LEB128) unsigned varint."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def monero_blob(prev_id: bytes, tx_root: bytes, tx_count: int, timestamp: int) -> bytes:
    head = varint(_MONERO_MAJOR) + varint(_MONERO_MINOR) + varint(timestamp) + prev_id
    if len(head) != 39:  # the nonce sits at byte 39: a 5-byte timestamp varint, as for any date after 1978
        msg = f"timestamp {timestamp} does not encode in 5 bytes"
        raise ValueError(msg)
    return head + bytes(4) + tx_root + varint(tx_count)


def bitcoin_header(prev_id: bytes, merkle_root: bytes, timestamp: int) -> bytes:
    head = struct.pack("<I", 0x2000_0000) + prev_id + merkle_root
    return head + struct.pack("<II", timestamp, 0x1D00_FFFF) + bytes(4)


@dataclass
class Job:
    job_id: str
    algo: Algorithm
    blob: bytes
    diff: int
    target_hex: str
    seed: bytes
    height: int

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "blob": self.blob.hex(),
            "job_id": self.job_id,
            "target": self.target_hex,
            "algo": self.algo.name,
            "height": self.height,
        }
        if self.algo.seeded:
            out["seed_hash"] = self.seed.hex()
        return out


class Chain:
    """The simulated chain: height, previous block id, the RandomX seed (fixed: a seed epoch is 2048
    Monero blocks, far longer than any lab run)."""

    def __init__(self, seed: bytes, height: int = 3_000_000) -> None:
        self.seed = seed
        self.height = height
        self.prev_id = secrets.token_bytes(32)
        self.blocks = 0
        self._job_seq = 0

    def new_block(self) -> None:
        self.height += 1
        self.prev_id = secrets.token_bytes(32)
        self.blocks += 1

    def job(self, algo: Algorithm, diff: int) -> Job:
        """A fresh template for one connection (its own tree root, as if its extra nonce differed)."""
        self._job_seq += 1
        now = int(time.time())
        if algo.blob_len == 80:
            blob = bitcoin_header(self.prev_id, secrets.token_bytes(32), now)
        else:
            tx_count = 1 + secrets.randbelow(120)
            blob = monero_blob(self.prev_id, secrets.token_bytes(32), tx_count, now)
        return Job(
            job_id=f"{self._job_seq:08x}{secrets.token_hex(4)}",
            algo=algo,
            blob=blob,
            diff=diff,
            target_hex=compact_target(diff),
            seed=self.seed,
            height=self.height,
        )
