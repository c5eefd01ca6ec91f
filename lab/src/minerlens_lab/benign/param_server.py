"""A parameter server for one data-parallel training worker, run outside the pod: ``python -m
minerlens_lab.benign.param_server --port P``.

Frames on the connection are a 4-byte big-endian length and that many bytes of little-endian float32.
The worker sends its flattened parameter vector once (the initial model), then a gradient vector every
few steps; the server applies it (SGD with momentum) to the global model and answers with the new
parameters. One JSON line per exchange goes to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import socket
import struct
import sys

import numpy as np

LR, MOMENTUM = 0.01, 0.9
MAX_FRAME = 64 << 20


def read_frame(f: io.BufferedIOBase) -> np.ndarray | None:
    """One float32 frame, or None at the end of the stream (or on a malformed frame)."""
    head = f.read(4)
    if len(head) < 4:
        return None
    (n,) = struct.unpack("!I", head)
    if n % 4 or n > MAX_FRAME:
        return None
    body = f.read(n)
    if len(body) < n:
        return None
    return np.frombuffer(body, dtype="<f4").copy()


def write_frame(f: io.BufferedIOBase, vec: np.ndarray) -> None:
    data = np.ascontiguousarray(vec, dtype="<f4").tobytes()
    f.write(struct.pack("!I", len(data)) + data)
    f.flush()


def serve(conn: socket.socket) -> None:
    f = conn.makefile("rwb")
    params = read_frame(f)
    if params is None:
        return
    velocity = np.zeros_like(params)
    exchanges = 0
    while (grad := read_frame(f)) is not None and grad.shape == params.shape:
        velocity = MOMENTUM * velocity - LR * grad
        params += velocity
        write_frame(f, params)
        exchanges += 1
        sys.stdout.write(json.dumps({"exchange": exchanges, "grad_norm": float(np.linalg.norm(grad))}) + "\n")
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args(argv)
    with socket.create_server(("127.0.0.1", args.port)) as srv, contextlib.suppress(KeyboardInterrupt):
        while True:
            conn, _ = srv.accept()
            with conn:
                serve(conn)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
