"""ML training loops: a NumPy MLP, and the same model in PyTorch when torch is installed."""

from __future__ import annotations

import json

from minerlens_lab.benign.common import LOOKALIKE_REPEATS, per_repeat, python_module, read_log, repeat_threads
from minerlens_lab.benign.mlp_train import make_dataset
from minerlens_lab.workload import RunContext, Workload

MIN_BUSY_CORES = 0.25


class _MlpTraining(Workload):
    family = "ml-training"
    label = "benign"
    repeats = LOOKALIKE_REPEATS
    imitates = "a no-yield miner: BLAS threads computing on every core with few syscalls"
    framework: str = ""

    def prepare(self, ctx: RunContext) -> None:
        make_dataset(ctx.workdir / "data")

    def command(self, ctx: RunContext) -> list[str]:
        wd = ctx.workdir
        threads, batch = repeat_threads(ctx), per_repeat(ctx, (128, 32, 512))
        ctx.facts["batch"] = batch
        return python_module(
            "minerlens_lab.benign.mlp_train",
            f"--framework={self.framework}",
            f"--data={wd / 'data'}",
            f"--log={wd / 'train.log'}",
            f"--checkpoint={wd / ('model.npz' if self.framework == 'numpy' else 'model.pt')}",
            f"--threads={threads}",
            f"--batch={batch}",
            threads=threads,
        )

    def check(self, ctx: RunContext) -> None:
        epochs = [json.loads(line) for line in read_log(ctx.workdir / "train.log").splitlines() if line.strip()]
        ctx.facts["epochs"] = len(epochs)
        busy = (ctx.cpu_seconds or 0.0) / ctx.seconds
        ctx.facts["busy_cores"] = round(busy, 3)
        if epochs:
            ctx.facts["first_loss"], ctx.facts["last_loss"] = epochs[0]["loss"], epochs[-1]["loss"]
            return
        # an epoch is ~50 GFLOP (seconds of both cores, more on a loaded machine): a short run may end
        # before the first one, but the trainer must at least have been computing
        if busy < MIN_BUSY_CORES:
            msg = f"no epoch finished and the trainer was hardly busy ({busy:.2f} cores)"
            raise RuntimeError(msg)


class NumpyMlp(_MlpTraining):
    name = "numpy-mlp"
    variant = "numpy-sgd"
    description = "a NumPy MLP (64-512-512-10) trained with minibatch SGD on a memory-mapped synthetic set"
    framework = "numpy"


class TorchMlp(_MlpTraining):
    name = "torch-mlp"
    variant = "torch-sgd"
    description = "the same MLP in PyTorch (only when torch is importable; never installed by the lab)"
    requires = ("python:torch",)
    framework = "torch"
