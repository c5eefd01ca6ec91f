"""Scoring with a verified artifact's ``model.onnx`` on ONNX Runtime (the only ML dependency of serving)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from minerlens_core.features import FeatureSpec
from minerlens_core.models.manifest import ONNX_FILE, ArtifactManifest, VerifiedManifest
from minerlens_core.schemas.windows import ModelRef

F64 = npt.NDArray[np.float64]


class OnnxModel:
    """Score windows with an artifact's ``model.onnx``; the artifact is verified before it is loaded.

    Feature models take float32 ``(n, dim)`` vectors; sequence models take int64 ``(n, L)`` syscall ids
    (``pad_sequences``).
    """

    def __init__(self, directory: Path, expected_spec: FeatureSpec | None = None, threads: int = 1) -> None:
        verified = VerifiedManifest(Path(directory), expected_spec)
        self.directory = verified.directory
        self.manifest: ArtifactManifest = verified.manifest
        self.spec: FeatureSpec = verified.spec
        self.ref: ModelRef = verified.ref
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(self.directory / ONNX_FILE), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.threshold = self.manifest.threshold

    @property
    def name(self) -> str:
        return self.manifest.model_name

    @property
    def n_features(self) -> int:
        return len(self.manifest.feature_names)

    @property
    def input_kind(self) -> str:
        return self.manifest.input_kind

    def score(self, X: npt.ArrayLike) -> F64:
        """Scores in [0, 1] of feature vectors (feature models) or id sequences (sequence models)."""
        m = self.manifest
        if m.input_kind == "sequence":
            arr = np.ascontiguousarray(np.asarray(X, dtype=np.int64))
            width = m.sequence_length
        else:
            arr = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
            width = self.n_features
        if arr.ndim != 2 or arr.shape[1] != width:
            msg = f"{m.model_name}: expected (n, {width}) {m.input_kind} input, got shape {arr.shape}"
            raise ValueError(msg)
        if arr.shape[0] == 0:
            return np.zeros(0, np.float64)
        (out,) = self._session.run([m.onnx_output], {m.onnx_input: arr})
        out = np.asarray(out, dtype=np.float64)
        col = out[:, m.onnx_positive_column] if out.ndim == 2 else out.reshape(-1)
        scores: F64 = np.clip(np.nan_to_num(col, nan=1.0), 0.0, 1.0)
        return scores

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        return np.asarray(self.score(X) > self.threshold, dtype=np.bool_)


def pad_sequences(seqs: list[npt.NDArray[np.int16]] | list[list[int]], length: int) -> npt.NDArray[np.int64]:
    """The last ``length`` ids of each sequence as an int64 matrix, right-aligned (most recent last).

    Shorter sequences are left-padded with ``VOCAB_SIZE``, the padding id sequence models reserve.
    """
    from minerlens_core.features import VOCAB_SIZE

    out = np.full((len(seqs), length), VOCAB_SIZE, dtype=np.int64)
    for i, s in enumerate(seqs):
        tail = np.asarray(s, dtype=np.int64)[-length:]
        if len(tail):
            out[i, length - len(tail) :] = tail
    return out
