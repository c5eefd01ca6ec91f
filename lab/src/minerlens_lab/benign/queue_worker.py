"""A job-queue worker: ``python -m minerlens_lab.benign.queue_worker --port P --kind pbkdf2|lzma
--threads N --log F``.

One Redis connection for its whole life (redis-py, ``single_connection_client``): ``BLPOP`` a job
(then ``LPOP`` up to N-1 more), compute them on N threads - PBKDF2-HMAC-SHA256 key stretching, or LZMA
compression of the job's payload; both release the GIL - and ``RPUSH`` the results; again. Every batch
appends ``"<seconds> <jobs done>"`` to the log. The CPU-bound worker fed over one long-lived connection:
the benign twin of a miner fed jobs by its pool.
"""

from __future__ import annotations

import argparse
import hashlib
import lzma
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

QUEUE, RESULTS = "jobs", "results"
SALT = b"minerlens-lab"


def pbkdf2_job(job: bytes) -> bytes:
    """``ID ITERATIONS SEED`` -> ``ID HEX``"""
    job_id, iterations, seed = job.split(b" ", 2)
    return job_id + b" " + hashlib.pbkdf2_hmac("sha256", seed, SALT, int(iterations)).hex().encode()


def lzma_job(job: bytes) -> bytes:
    """``ID PRESET PAYLOAD`` -> ``ID COMPRESSED``"""
    job_id, preset, payload = job.split(b" ", 2)
    return job_id + b" " + lzma.compress(payload, preset=int(preset))


def main(argv: list[str] | None = None) -> int:
    import redis

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--kind", choices=["pbkdf2", "lzma"], required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log", type=Path, required=True)
    args = ap.parse_args(argv)
    work = pbkdf2_job if args.kind == "pbkdf2" else lzma_job
    conn = redis.Redis(host="127.0.0.1", port=args.port, single_connection_client=True)
    t0, done = time.monotonic(), 0
    with ThreadPoolExecutor(max_workers=max(1, args.threads)) as pool:
        while True:
            got = conn.blpop([QUEUE], timeout=5)
            if not got:
                continue
            jobs = [got[1]]
            if args.threads > 1:
                more = conn.lpop(QUEUE, args.threads - 1)
                jobs += more if isinstance(more, list) else []
            conn.rpush(RESULTS, *pool.map(work, jobs))
            done += len(jobs)
            with args.log.open("a") as f:
                f.write(f"{time.monotonic() - t0:.1f} {done}\n")


if __name__ == "__main__":
    raise SystemExit(main())
