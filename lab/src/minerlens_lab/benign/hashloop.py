"""A Python hashing job: ``python -m minerlens_lab.benign.hashloop --mode bulk|header``.

``bulk``: THREADS threads checksum a 1 MiB in-memory buffer in 64 KiB blocks (hashlib releases the GIL
for large inputs, so they really run in parallel), as a backup/dedup/integrity job does.
``header``: THREADS threads compute double hashes of an 80-byte header with a moving nonce (small
inputs: the GIL is held, threads take turns), as a proof-of-work *verifier* or a content-addressing
service does. Every 2 s ``"<seconds> <hashes>"`` is appended to the log. Runs until killed.
"""

from __future__ import annotations

import argparse
import hashlib
import threading
import time
from pathlib import Path

BLOCK = 64 << 10


class _Counter:
    def __init__(self) -> None:
        self.value = 0
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.value += n


def _bulk(algo: str, seed: int, counter: _Counter) -> None:
    data = bytes((i * 131 + seed) & 0xFF for i in range(256)) * (4 << 10)  # 1 MiB
    view = memoryview(data)
    while True:
        h = hashlib.new(algo)
        for off in range(0, len(data), BLOCK):
            h.update(view[off : off + BLOCK])
        h.digest()
        counter.add(len(data) // BLOCK)


def _header(algo: str, seed: int, counter: _Counter) -> None:
    header = bytearray(bytes([seed]) * 80)
    nonce = 0
    while True:
        for _ in range(2048):
            header[76:80] = nonce.to_bytes(4, "little")
            hashlib.new(algo, hashlib.new(algo, header).digest()).digest()
            nonce = (nonce + 1) & 0xFFFFFFFF
        counter.add(2048)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mode", choices=["bulk", "header"], default="bulk")
    ap.add_argument("--algo", default="sha256", choices=sorted(hashlib.algorithms_guaranteed))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log", type=Path, required=True)
    args = ap.parse_args(argv)
    counter = _Counter()
    work = _bulk if args.mode == "bulk" else _header
    for i in range(max(1, args.threads)):
        threading.Thread(target=work, args=(args.algo, i, counter), daemon=True).start()
    t0 = time.monotonic()
    while True:
        time.sleep(2.0)
        with args.log.open("a") as f:
            f.write(f"{time.monotonic() - t0:.1f} {counter.value}\n")


if __name__ == "__main__":
    raise SystemExit(main())
