"""A closed-loop HTTP load generator: ``python -m minerlens_lab.benign.httpload``.

Threads each keep a connection (reopened when the server closes it, as HTTP/1.0 servers do) and GET
paths from the site's request mix; prints one JSON line of totals.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import threading
import time

from minerlens_lab.benign.site import request_paths


def _worker(host: str, port: int, until: float, seed: int, totals: dict[str, int], lock: threading.Lock) -> None:
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    paths = request_paths()
    conn: http.client.HTTPConnection | None = None
    while time.monotonic() < until:
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=1)
        try:
            conn.request("GET", rng.choice(paths), headers={"Accept-Encoding": "gzip"})
            resp = conn.getresponse()
            body = resp.read()
            with lock:
                totals["requests"] += 1
                totals["bytes"] += len(body)
            if resp.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            with lock:
                totals["errors"] += 1
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.01)
    if conn is not None:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args(argv)
    totals = {"requests": 0, "errors": 0, "bytes": 0}
    lock = threading.Lock()
    until = time.monotonic() + args.seconds
    workers = [
        threading.Thread(target=_worker, args=(args.host, args.port, until, i, totals, lock), daemon=True)
        for i in range(args.concurrency)
    ]
    for w in workers:
        w.start()
    for w in workers:  # a request still in flight at the deadline is not waited for
        w.join(timeout=max(0.0, until - time.monotonic()) + 0.2)
    with lock:
        report = json.dumps(totals)
    sys.stdout.write(report + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
