"""ML training loops: a NumPy MLP, and the same model in PyTorch when torch is installed."""

from __future__ import annotations

import json

from minerlens_lab.benign.common import python_module, read_log
from minerlens_lab.benign.mlp_train import make_dataset
from minerlens_lab.workload import RunContext, Workload


class _MlpTraining(Workload):
    family = "ml-training"
    label = "benign"
    framework: str = ""

    def prepare(self, ctx: RunContext) -> None:
        make_dataset(ctx.workdir / "data")

    def command(self, ctx: RunContext) -> list[str]:
        wd = ctx.workdir
        return python_module(
            "minerlens_lab.benign.mlp_train",
            f"--framework={self.framework}",
            f"--data={wd / 'data'}",
            f"--log={wd / 'train.log'}",
            f"--checkpoint={wd / ('model.npz' if self.framework == 'numpy' else 'model.pt')}",
            f"--threads={ctx.threads}",
            threads=ctx.threads,
        )

    def check(self, ctx: RunContext) -> None:
        epochs = [json.loads(line) for line in read_log(ctx.workdir / "train.log").splitlines() if line.strip()]
        ctx.facts["epochs"] = len(epochs)
        if epochs:
            ctx.facts["first_loss"], ctx.facts["last_loss"] = epochs[0]["loss"], epochs[-1]["loss"]


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
