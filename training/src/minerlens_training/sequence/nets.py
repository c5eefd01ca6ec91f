"""The torch modules of the sequence models (imported only when a sequence model is built).

Input of both: ``(n, L)`` int64 syscall ids (``pad_sequences``: right-aligned, left-padded with
``PAD = VOCAB_SIZE``); the embedding has ``VOCAB_SIZE + 1`` rows and ``PAD``'s row is fixed at zero.

* ``LSTMClassifierNet``: embedding -> LSTM -> last hidden state -> linear -> softmax. ``forward`` is
  what ONNX exports: ``probabilities`` ``(n, 2)``, column 1 = miner.
* ``LSTMAutoencoderNet``: the encoder LSTM's last hidden state is the code; the decoder LSTM reads it
  at every position and a linear layer predicts the syscall there. The reconstruction error of a
  position is the cross-entropy of its true id (0 at PAD positions). ``forward`` returns ``score``
  ``(n,)`` = ``e / (e + scale)`` with ``e`` the mean error over the window's real positions and
  ``scale`` the median ``e`` of the benign training windows (so a typical benign window scores 0.5;
  monotone in ``e``, in [0, 1), no saturation before ``e`` ~ 1e7 ``scale``), and ``position_error``
  ``(n, L)``.
"""

from __future__ import annotations

import torch
from minerlens_core.features import VOCAB_SIZE
from torch import nn

PAD = VOCAB_SIZE


class LSTMClassifierNet(nn.Module):
    def __init__(self, embedding: int = 32, hidden: int = 64, vocab: int = VOCAB_SIZE) -> None:
        super().__init__()
        self.pad = vocab
        self.embed = nn.Embedding(vocab + 1, embedding, padding_idx=vocab)
        self.lstm = nn.LSTM(embedding, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(self.embed(x))
        out: torch.Tensor = self.head(h[-1])
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=-1)


class LSTMAutoencoderNet(nn.Module):
    def __init__(self, embedding: int = 32, hidden: int = 64, vocab: int = VOCAB_SIZE) -> None:
        super().__init__()
        self.pad = vocab
        self.embed = nn.Embedding(vocab + 1, embedding, padding_idx=vocab)
        self.encoder = nn.LSTM(embedding, hidden, batch_first=True)
        self.decoder = nn.LSTM(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab + 1)
        self.scale: torch.Tensor
        self.register_buffer("scale", torch.ones(()))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, L, vocab + 1)``: the decoder's prediction of every position from the code alone."""
        _, (h, _) = self.encoder(self.embed(x))
        code = h[-1].unsqueeze(1).expand(-1, x.shape[1], -1)
        out, _ = self.decoder(code)
        logits: torch.Tensor = self.head(out)
        return logits

    def real(self, x: torch.Tensor) -> torch.Tensor:
        """1.0 at real positions, 0.0 at PAD."""
        return (x != self.pad).to(torch.float32)

    def position_error(self, x: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(self.logits(x), dim=-1)
        err = -logp.gather(-1, x.unsqueeze(-1)).squeeze(-1)
        return err * self.real(x)

    def mean_error(self, x: torch.Tensor, position_error: torch.Tensor) -> torch.Tensor:
        n = self.real(x).sum(dim=1).clamp(min=1.0)
        return position_error.sum(dim=1) / n

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pe = self.position_error(x)
        e = self.mean_error(x, pe)
        return e / (e + self.scale), pe
