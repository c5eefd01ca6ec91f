"""LSTM detectors over window syscall-id sequences, behind the same interface as the feature models.

``X`` is an integer matrix of syscall ids, one row per window, right-aligned and left-padded with
``VOCAB_SIZE`` (``Dataset.sequences`` or ``pad_sequences``); any width works: the last ``length``
columns are used (a narrower matrix is left-padded), which equals ``pad_sequences(seqs, length)``.

* ``LSTMDetector`` (``lstm``): supervised; score = miner probability. Class-balanced cross-entropy with
  label smoothing, which keeps the probabilities graded (an over-confident net scores benign windows of
  unseen workloads at exactly 1.0 in float32, and then no threshold meets a 1 % FPR target).
* ``LSTMAutoencoderDetector`` (``lstm-ae``): fitted on the **benign** windows only (miner rows are
  ignored); score = mean per-position reconstruction error mapped to [0, 1) by ``e / (e + scale)``
  (``scale`` = median error of the benign training windows). An anomaly score, not a probability.

torch is imported when a model is fitted or loaded, so the registry works without the ``deep`` extra.
Training runs on CPU, seeded (``torch.random.fork_rng``: the global RNG is left alone), with ``threads``
intra-op threads (default 1: these nets are small, and on a shared machine two spinning OpenMP threads
made a fit 10-25x slower than one).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
from minerlens_core.features import VOCAB_SIZE

from minerlens_training.detectors.base import ArrayLike, BaseDetector
from minerlens_training.errors import DatasetError, NotFittedError

if TYPE_CHECKING:
    import torch
    from torch import nn

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
PAD = VOCAB_SIZE
DEFAULT_LENGTH = 64
_SCORE_BATCH = 2048


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, then restore the previous setting."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def as_sequences(X: ArrayLike, length: int) -> I64:
    """The last ``length`` columns of an id matrix (left-padded with PAD when narrower), as int64."""
    S = np.asarray(X)
    if S.ndim != 2:
        msg = f"a sequence model needs a 2-D id matrix (windows x positions), got shape {S.shape}"
        raise ValueError(msg)
    if S.dtype.kind not in "iu":
        msg = f"a sequence model reads integer syscall-id sequences, not {S.dtype} features"
        raise ValueError(msg)
    if S.size and (S.min() < 0 or S.max() > PAD):
        msg = f"syscall ids must be in [0, {PAD}] ({PAD} = padding), got [{S.min()}, {S.max()}]"
        raise ValueError(msg)
    out = np.full((S.shape[0], length), PAD, dtype=np.int64)
    w = min(length, S.shape[1])
    if w:
        out[:, length - w :] = S[:, S.shape[1] - w :]
    return out


@dataclass(frozen=True)
class SequenceParams:
    """Hyperparameters of a sequence model (``make_detector(name, **params)`` overrides the class defaults)."""

    length: int = DEFAULT_LENGTH
    """ids per window the model reads (the tail of ``window_sequence``)"""
    embedding: int = 32
    hidden: int = 64
    epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 3e-3
    threads: int = 1
    label_smoothing: float = 0.05
    """LSTM classifier only"""


class SequenceDetector(BaseDetector):
    """Common training / scoring loop of the torch sequence models."""

    input_kind = "sequence"
    onnx_outputs: ClassVar[tuple[str, ...]]
    """output names of the exported graph (the first is the score the manifest names)"""
    defaults: ClassVar[SequenceParams] = SequenceParams()

    def __init__(self, seed: int = 0, **params: Any) -> None:
        super().__init__(seed)
        self.params = replace(self.defaults, **params)
        self._net: nn.Module | None = None
        self.train_seconds: float | None = None

    @property
    def length(self) -> int:
        return self.params.length

    def hyperparameters(self) -> dict[str, Any]:
        return {"seed": self.seed, **asdict(self.params)}

    @abstractmethod
    def new_net(self) -> nn.Module:
        """A fresh, untrained module with this detector's sizes."""

    @abstractmethod
    def _train(self, net: nn.Module, S: I64, y: I64, generator: torch.Generator) -> None:
        """Fit ``net`` in place on ``S`` (already ``length`` wide) and ``y``."""

    @abstractmethod
    def _score_batch(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The exported graph's score output for one batch."""

    @property
    def fitted(self) -> bool:
        return self._net is not None

    @property
    def net(self) -> nn.Module:
        if self._net is None:
            msg = f"{self.name}: call fit() first"
            raise NotFittedError(msg)
        return self._net

    def set_net(self, net: nn.Module) -> None:
        """Install a trained module (the artifact loader does this); forgets any threshold."""
        self._net = net.eval()
        self.threshold = None
        self.threshold_fpr = None

    def fit(self, X: ArrayLike, y: ArrayLike) -> Self:
        import time

        import torch

        S = as_sequences(X, self.length)
        y64 = np.asarray(y, dtype=np.int64).ravel()
        if S.shape[0] != y64.shape[0]:
            msg = f"X has {S.shape[0]} rows, y {y64.shape[0]}"
            raise ValueError(msg)
        self._check_labels(y64)
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=[]), torch_threads(self.params.threads):
            torch.manual_seed(self.seed)
            net = self.new_net()
            gen = torch.Generator().manual_seed(self.seed)
            net.train()
            self._train(net, S, y64, gen)
        self.set_net(net)
        self.train_seconds = time.perf_counter() - t0
        return self

    def _check_labels(self, y: I64) -> None:
        if set(np.unique(y).tolist()) != {0, 1}:
            msg = f"training needs both labels (0 = benign, 1 = miner), got {sorted(set(y.tolist()))}"
            raise DatasetError(msg)

    def score(self, X: ArrayLike) -> F64:
        import torch

        net = self.net
        S = as_sequences(X, self.length)
        if S.shape[0] == 0:
            return np.zeros(0, np.float64)
        out = []
        with torch.no_grad(), torch_threads(self.params.threads):
            for i in range(0, S.shape[0], _SCORE_BATCH):
                out.append(self._score_batch(net, torch.from_numpy(S[i : i + _SCORE_BATCH])).numpy())
        return np.clip(np.concatenate(out).astype(np.float64), 0.0, 1.0)

    def _batches(self, n: int, generator: torch.Generator) -> list[torch.Tensor]:
        import torch

        perm = torch.randperm(n, generator=generator)
        return list(torch.split(perm, self.params.batch_size))


class LSTMDetector(SequenceDetector):
    """Supervised LSTM classifier: embedding 32 -> LSTM 64 -> last state -> softmax (miner probability)."""

    name = "lstm"
    kind = "lstm"
    onnx_outputs = ("probabilities",)

    def new_net(self) -> nn.Module:
        from minerlens_training.sequence.nets import LSTMClassifierNet

        return LSTMClassifierNet(self.params.embedding, self.params.hidden)

    def _train(self, net: nn.Module, S: I64, y: I64, generator: torch.Generator) -> None:
        import torch

        from minerlens_training.sequence.nets import LSTMClassifierNet

        if not isinstance(net, LSTMClassifierNet):
            raise TypeError(type(net).__name__)
        counts = np.bincount(y, minlength=2).astype(np.float64)
        weight = torch.tensor(len(y) / (2.0 * counts), dtype=torch.float32)
        loss_fn = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=self.params.label_smoothing)
        opt = torch.optim.Adam(net.parameters(), lr=self.params.learning_rate)
        xs, ys = torch.from_numpy(S), torch.from_numpy(y)
        for _ in range(self.params.epochs):
            for idx in self._batches(len(y), generator):
                opt.zero_grad()
                loss = loss_fn(net.logits(xs[idx]), ys[idx])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()

    def _score_batch(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        proba: torch.Tensor = net(x)
        return proba[:, 1]


class LSTMAutoencoderDetector(SequenceDetector):
    """LSTM autoencoder fitted on benign windows; score = reconstruction error mapped to [0, 1)."""

    name = "lstm-ae"
    kind = "lstm-autoencoder"
    kind_of_score = "anomaly score"
    onnx_outputs = ("score", "position_error")
    defaults = SequenceParams(epochs=30, batch_size=32, label_smoothing=0.0)

    def new_net(self) -> nn.Module:
        from minerlens_training.sequence.nets import LSTMAutoencoderNet

        return LSTMAutoencoderNet(self.params.embedding, self.params.hidden)

    def _check_labels(self, y: I64) -> None:
        if not (y == 0).any():
            msg = "the LSTM autoencoder is fitted on benign windows (label 0), and there are none"
            raise DatasetError(msg)

    def _train(self, net: nn.Module, S: I64, y: I64, generator: torch.Generator) -> None:
        import torch

        from minerlens_training.sequence.nets import LSTMAutoencoderNet

        if not isinstance(net, LSTMAutoencoderNet):
            raise TypeError(type(net).__name__)
        xs = torch.from_numpy(S[y == 0])
        opt = torch.optim.Adam(net.parameters(), lr=self.params.learning_rate)
        for _ in range(self.params.epochs):
            for idx in self._batches(xs.shape[0], generator):
                xb = xs[idx]
                opt.zero_grad()
                real = net.real(xb)
                loss = net.position_error(xb).sum() / real.sum().clamp(min=1.0)
                torch.autograd.backward(loss)
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()
        net.eval()
        with torch.no_grad():
            errors = net.mean_error(xs, net.position_error(xs))
        net.scale.fill_(max(float(errors.median()), 1e-6))

    def _score_batch(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        score, _ = net(x)
        out: torch.Tensor = score
        return out

    def position_error(self, X: ArrayLike) -> npt.NDArray[np.float32]:
        """Per-position reconstruction error ``(n, length)`` (0 at PAD), as the ONNX output of that name."""
        import torch

        S = as_sequences(X, self.length)
        with torch.no_grad(), torch_threads(self.params.threads):
            _, pe = self.net(torch.from_numpy(S))
        return np.asarray(pe.numpy(), dtype=np.float32)
