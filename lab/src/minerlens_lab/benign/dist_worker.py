"""A data-parallel training worker: ``python -m minerlens_lab.benign.dist_worker --port P --data D
--sync-every K --threads N --log F``.

Trains the lab's MLP (64-512-512-10, NumPy, BLAS on N threads) on its shard of a memory-mapped data set
and, every K steps, sends its accumulated gradient to the parameter server over its one TCP connection
and takes the new global parameters back (as parameter-server and all-reduce training do). Each
exchange appends ``"<seconds> <exchanges> <steps> <loss>"`` to the log.
"""

from __future__ import annotations

import argparse
import itertools
import socket
import time
from pathlib import Path

import numpy as np

from minerlens_lab.benign.mlp_train import CLASSES, FEATURES, HIDDEN
from minerlens_lab.benign.param_server import read_frame, write_frame

SIZES = [FEATURES, HIDDEN, HIDDEN, CLASSES]


def init_params(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for a, b in itertools.pairwise(SIZES):
        out += [rng.normal(0, np.sqrt(2 / a), size=(a, b)).astype(np.float32), np.zeros(b, np.float32)]
    return out


def flatten(params: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([p.ravel() for p in params])


def unflatten(vec: np.ndarray, like: list[np.ndarray]) -> list[np.ndarray]:
    out, off = [], 0
    for p in like:
        out.append(vec[off : off + p.size].reshape(p.shape))
        off += p.size
    return out


def gradients(params: list[np.ndarray], xb: np.ndarray, yb: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """Softmax cross-entropy loss of a ReLU MLP and its gradients (backprop)."""
    acts = [xb]
    for k in range(3):
        z = acts[-1] @ params[2 * k] + params[2 * k + 1]
        acts.append(np.maximum(z, 0) if k < 2 else z)
    logits = acts[-1] - acts[-1].max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    loss = float(-np.log(p[np.arange(len(yb)), yb] + 1e-9).mean())
    grad = p
    grad[np.arange(len(yb)), yb] -= 1
    grad /= len(yb)
    grads: list[np.ndarray] = [np.empty(0, np.float32)] * len(params)
    for k in (2, 1, 0):
        grads[2 * k], grads[2 * k + 1] = acts[k].T @ grad, grad.sum(axis=0)
        if k:
            grad = (grad @ params[2 * k].T) * (acts[k] > 0)
    return loss, grads


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--sync-every", type=int, default=10)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--log", type=Path, required=True)
    args = ap.parse_args(argv)
    x = np.load(args.data / "x.npy", mmap_mode="r")
    y = np.load(args.data / "y.npy", mmap_mode="r")
    rng = np.random.default_rng(1)
    params = init_params()
    t0, steps, exchanges = time.monotonic(), 0, 0
    with socket.create_connection(("127.0.0.1", args.port)) as s:
        f = s.makefile("rwb")
        write_frame(f, flatten(params))
        acc = [np.zeros_like(p) for p in params]
        losses: list[float] = []
        while True:
            idx = np.sort(rng.choice(len(x), size=args.batch, replace=False))
            loss, grads = gradients(params, np.asarray(x[idx]), np.asarray(y[idx]))
            losses.append(loss)
            for a, g in zip(acc, grads, strict=True):
                a += g
            steps += 1
            if steps % args.sync_every:
                continue
            write_frame(f, flatten([a / args.sync_every for a in acc]))
            new = read_frame(f)
            if new is None:
                return 1
            params = unflatten(new, params)
            acc = [np.zeros_like(p) for p in params]
            exchanges += 1
            with args.log.open("a") as out:
                out.write(f"{time.monotonic() - t0:.1f} {exchanges} {steps} {np.mean(losses):.5f}\n")
            losses.clear()


if __name__ == "__main__":
    raise SystemExit(main())
