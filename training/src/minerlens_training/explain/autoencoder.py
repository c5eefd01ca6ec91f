"""Explanations of the LSTM autoencoder from its per-position reconstruction error.

The artifact's ``model.onnx`` (input ``sequence`` int64 ``(n, L)``, ids from ``window_sequence`` padded
by ``pad_sequences`` with ``VOCAB_SIZE``) has two outputs: ``score`` (the anomaly score in [0, 1]) and
``position_error`` ``(n, L)``, the reconstruction error of every position (0 at padding). The
explanation attributes the error to syscalls — the share of the window's total error on each syscall
name, reported as feature ``freq_nocheap.<name>`` (the sequence is the window's non-cheap calls) with
its share of the sequence and the benign median share — and to positions: the contiguous stretch of
calls holding the most error is named in the summary and in ``params`` (``hot_span_*``). An
autoencoder only says "unlike what it learned as normal", so every contribution points toward the
anomaly (``toward_miner``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from minerlens_core.errors import ArtifactError
from minerlens_core.features import VOCAB_SIZE, VOCABULARY
from minerlens_core.models import ONNX_FILE, SEQUENCE_INPUT, Background, VerifiedManifest
from minerlens_core.models.onnx_model import load_session, pad_sequences
from minerlens_core.schemas.explanations import Contribution

from minerlens_training.artifacts import load_background
from minerlens_training.explain.base import F64, WindowExplainer
from minerlens_training.explain.wording import WindowIds, share

I64 = npt.NDArray[np.int64]
SCORE_OUTPUT = "score"
POSITION_ERROR_OUTPUT = "position_error"
PAD = VOCAB_SIZE
MIN_SPAN_CALLS = 16


class LstmAeExplainer(WindowExplainer):
    method = "lstm-ae"
    unit = "share of reconstruction error"

    def __init__(self, directory: Path, *, background: Background | None = None, threads: int = 1) -> None:
        verified = VerifiedManifest(Path(directory))
        m = verified.manifest
        if m.input_kind != "sequence" or not m.sequence_length:
            msg = f"{directory}: {m.model_name} takes {m.input_kind} input; lstm-ae explains sequence models"
            raise ArtifactError(msg)
        super().__init__(m, verified.ref, verified.spec, background or load_background(verified))
        self._session = load_session(verified.directory / ONNX_FILE, m, threads)  # hashed bytes, clean refusal
        outputs = {o.name for o in self._session.get_outputs()}
        inputs = [i.name for i in self._session.get_inputs()]
        if not {SCORE_OUTPUT, POSITION_ERROR_OUTPUT} <= outputs or inputs != [m.onnx_input or SEQUENCE_INPUT]:
            msg = (
                f"{directory}: lstm-ae needs input {m.onnx_input!r} and outputs {SCORE_OUTPUT!r} and "
                f"{POSITION_ERROR_OUTPUT!r}; model.onnx has inputs {inputs} and outputs {sorted(outputs)}"
            )
            raise ArtifactError(msg)
        self.length = int(m.sequence_length)
        self._input = inputs[0]

    def pad(self, sequences: npt.ArrayLike) -> I64:
        """``(n, L)`` int64 from one sequence, a list of sequences or an ``(n, L)`` matrix (tail kept)."""
        arr = sequences if isinstance(sequences, list) else np.asarray(sequences)
        if isinstance(arr, np.ndarray) and arr.ndim == 1:
            arr = [arr]
        seqs = [np.asarray(s, dtype=np.int64) for s in arr]
        for s in seqs:
            if s.size and (s.min() < 0 or s.max() > PAD):
                msg = f"syscall ids must be in [0, {PAD}] ({PAD} = padding), got {s.min()}..{s.max()}"
                raise ValueError(msg)
        return pad_sequences([s.astype(np.int16) for s in seqs], self.length)

    def run(self, sequences: npt.ArrayLike) -> tuple[F64, F64]:
        """(scores ``(n,)``, position errors ``(n, L)``) of padded sequences; empty sequences score 0."""
        ids = self.pad(sequences)
        if ids.shape[0] == 0:
            return np.zeros(0), np.zeros((0, self.length))
        score, err = self._session.run([SCORE_OUTPUT, POSITION_ERROR_OUTPUT], {self._input: ids})
        s = np.asarray(score, dtype=np.float64).reshape(-1)
        e = np.nan_to_num(np.asarray(err, dtype=np.float64).reshape(ids.shape))
        empty = (ids == PAD).all(axis=1)
        s = np.where(empty, 0.0, np.clip(np.nan_to_num(s, nan=1.0), 0.0, 1.0))
        e[ids == PAD] = 0.0
        return s, e

    def score(self, inputs: npt.ArrayLike) -> F64:
        return self.run(inputs)[0]

    def attributions(self, sequence: npt.ArrayLike) -> tuple[I64, F64, F64]:
        """(padded ids ``(L,)``, per-position error ``(L,)``, per-syscall share of the error ``(VOCAB_SIZE,)``)."""
        ids = self.pad(sequence)[0]
        _, err = self.run(ids[None])
        e = np.clip(err[0], 0.0, None)
        real = ids != PAD
        total = float(e[real].sum())
        per: F64 = np.bincount(ids[real], weights=e[real], minlength=VOCAB_SIZE)[:VOCAB_SIZE].astype(np.float64)
        shares: F64 = per / total if total > 0 else per
        return ids, e, shares

    def hot_span(self, ids: I64, error: F64) -> tuple[int, int, float]:
        """[start, end) of the stretch of ``max(8, n/16)`` real calls with the most error, and its share.

        (0, 0, 0.0) when the sequence has fewer than ``MIN_SPAN_CALLS`` calls (a stretch would be most of it).
        """
        real = np.flatnonzero(ids != PAD)
        if real.size < MIN_SPAN_CALLS or error.sum() <= 0:
            return 0, 0, 0.0
        width = min(real.size, max(8, real.size // 16))
        e = error[real]
        sums = np.convolve(e, np.ones(width), mode="valid")
        k = int(np.argmax(sums))
        return int(real[k] - real[0]), int(real[k] - real[0] + width), float(sums[k] / e.sum())

    def _explain(
        self, x: npt.NDArray[np.generic], top: int, context: WindowIds | None
    ) -> tuple[float, float | None, list[Contribution], dict[str, str | int | float | bool]]:
        ids, err, per = self.attributions(x)
        score = float(self.score(ids[None])[0])
        real = ids[ids != PAD]
        counts = np.bincount(real, minlength=VOCAB_SIZE)[:VOCAB_SIZE]
        n = max(1, real.size)
        order = np.lexsort((np.arange(VOCAB_SIZE), -per))
        contributions = []
        for sid in order[:top].tolist():
            if per[sid] <= 0:
                break
            name = VOCABULARY[sid]
            feature = f"freq_nocheap.{name}"
            j = self.feature_index(feature)
            value = counts[sid] / n
            if j is None:  # a cheap syscall the sequence kept (should not happen with window_sequence)
                feature, j = f"freq.{name}", self.feature_index(f"freq.{name}")
            bench = self.wording.benign_range(feature, *self.benign(j)) if j is not None else ""
            text = (
                f"{name} carries {share(float(per[sid]))} of the reconstruction error; it is {int(counts[sid])} of "
                f"the {real.size} calls ({share(value)}" + (f"; {bench})" if bench else ")")
            )
            if j is None:
                contributions.append(
                    Contribution(
                        feature=feature,
                        label=f"{name} calls",
                        value=value,
                        contribution=float(per[sid]),
                        direction="toward_miner",
                        text=text,
                    )
                )
            else:
                c = self.feature_contribution(j, value, float(per[sid]), context, text=text)
                contributions.append(c.model_copy(update={"direction": "toward_miner"}))
        lo, hi, span_share = self.hot_span(ids, err)
        params: dict[str, str | int | float | bool] = {
            "explainer": "reconstruction error per syscall and position",
            "sequence_length": self.length,
            "calls": int(real.size),
            "hot_span_start": lo,
            "hot_span_end": hi,
            "hot_span_error_share": round(span_share, 4),
            "hot_span_syscalls": " ".join(VOCABULARY[i] for i in _top_ids(real[lo:hi])),
        }
        return score, None, contributions, params

    def extra_sentence(self, params: dict[str, str | int | float | bool]) -> str:
        lo, hi = int(params.get("hot_span_start", 0)), int(params.get("hot_span_end", 0))
        if hi <= lo:
            return ""
        names = str(params.get("hot_span_syscalls", "")).replace(" ", ", ")
        part = share(float(params.get("hot_span_error_share", 0.0)))
        return f"The error is densest in calls {lo}-{hi} of the sequence ({names}): {part} of it."

    def method_note(self) -> str:
        return "LSTM-autoencoder reconstruction error, contributions as shares of the window's error"

    def describe_model(self) -> str:
        return f"{super().describe_model()} (LSTM autoencoder)"


def _top_ids(ids: I64, k: int = 3) -> list[int]:
    if ids.size == 0:
        return []
    counts = np.bincount(ids)
    return [int(i) for i in np.argsort(-counts, kind="stable")[:k] if counts[i] > 0]
