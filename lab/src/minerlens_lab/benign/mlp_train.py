"""A small training job: ``python -m minerlens_lab.benign.mlp_train --framework numpy|torch``.

An MLP (64-512-512-10, ReLU, softmax cross-entropy) trained with minibatch SGD + momentum on a
synthetic classification set that is memory-mapped from disk; one JSON line per epoch goes to the log
and a checkpoint is written every epoch, as a training job would. Runs until killed (or --epochs).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

FEATURES, CLASSES, HIDDEN = 64, 10, 512


def make_dataset(path: Path, n: int = 50_000, seed: int = 3) -> Path:
    """Gaussian clusters, one per class, saved as float32 features + int64 labels (.npy pair)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, size=(CLASSES, FEATURES))
    y = rng.integers(0, CLASSES, size=n)
    x = (centers[y] + rng.normal(0, 9.0, size=(n, FEATURES))).astype(np.float32)
    path.mkdir(parents=True, exist_ok=True)
    np.save(path / "x.npy", x)
    np.save(path / "y.npy", y.astype(np.int64))
    return path


def _train_numpy(x: np.ndarray, y: np.ndarray, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    sizes = [FEATURES, HIDDEN, HIDDEN, CLASSES]
    w = [rng.normal(0, np.sqrt(2 / a), size=(a, b)).astype(np.float32) for a, b in itertools.pairwise(sizes)]
    b = [np.zeros(s, np.float32) for s in sizes[1:]]
    vw = [np.zeros_like(p) for p in w]
    vb = [np.zeros_like(p) for p in b]
    lr, mom = 0.01, 0.9
    for epoch in range(args.epochs):
        t0, losses = time.monotonic(), []
        order = rng.permutation(len(x))
        for i in range(0, len(x), args.batch):
            idx = np.sort(order[i : i + args.batch])
            xb, yb = np.asarray(x[idx]), np.asarray(y[idx])
            acts = [xb]
            for k in range(3):
                z = acts[-1] @ w[k] + b[k]
                acts.append(np.maximum(z, 0) if k < 2 else z)
            logits = acts[-1] - acts[-1].max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            losses.append(float(-np.log(p[np.arange(len(yb)), yb] + 1e-9).mean()))
            grad = p
            grad[np.arange(len(yb)), yb] -= 1
            grad /= len(yb)
            for k in (2, 1, 0):
                gw, gb = acts[k].T @ grad, grad.sum(axis=0)
                if k:
                    grad = (grad @ w[k].T) * (acts[k] > 0)
                vw[k] = mom * vw[k] - lr * gw
                vb[k] = mom * vb[k] - lr * gb
                w[k] += vw[k]
                b[k] += vb[k]
        _log_epoch(args, epoch, float(np.mean(losses)), time.monotonic() - t0)
        np.savez(args.checkpoint, *w, *b)


def _train_torch(x: np.ndarray, y: np.ndarray, args: argparse.Namespace) -> None:
    import torch  # optional: only for the torch variant

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = torch.nn.Sequential(
        torch.nn.Linear(FEATURES, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, CLASSES),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    for epoch in range(args.epochs):
        t0, losses = time.monotonic(), []
        order = rng.permutation(len(x))
        for i in range(0, len(x), args.batch):
            idx = np.sort(order[i : i + args.batch])
            xb, yb = torch.from_numpy(np.asarray(x[idx])), torch.from_numpy(np.asarray(y[idx]))
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            losses.append(float(loss.item()))
        _log_epoch(args, epoch, float(np.mean(losses)), time.monotonic() - t0)
        torch.save(model.state_dict(), args.checkpoint)


def _log_epoch(args: argparse.Namespace, epoch: int, loss: float, seconds: float) -> None:
    with open(args.log, "a") as f:
        f.write(json.dumps({"epoch": epoch, "loss": round(loss, 5), "seconds": round(seconds, 4)}) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--framework", choices=["numpy", "torch"], default="numpy")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    x = np.load(args.data / "x.npy", mmap_mode="r")
    y = np.load(args.data / "y.npy", mmap_mode="r")
    (_train_torch if args.framework == "torch" else _train_numpy)(x, y, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
