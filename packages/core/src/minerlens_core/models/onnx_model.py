"""Scoring with a verified artifact's ``model.onnx`` on ONNX Runtime (the only ML dependency of serving).

Loading is part of the verification: the bytes handed to ONNX Runtime are the bytes whose sha256 was
just checked against the (sealed) manifest, so the file cannot be swapped between check and load; a
model ONNX Runtime cannot load, whose inputs/outputs are not the ones the manifest names, or that
cannot score one probe row is refused with an ``ArtifactError`` instead of failing later.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from minerlens_core.errors import ArtifactError, ArtifactIntegrityError
from minerlens_core.features import FeatureSpec
from minerlens_core.models.manifest import ONNX_FILE, ArtifactManifest, VerifiedManifest
from minerlens_core.models.signing import Trust
from minerlens_core.schemas.windows import ModelRef

F64 = npt.NDArray[np.float64]


class OnnxModel:
    """Score windows with an artifact's ``model.onnx``; the artifact is verified before it is loaded.

    Feature models take float32 ``(n, dim)`` vectors; sequence models take int64 ``(n, L)`` syscall ids
    (``pad_sequences``).
    """

    def __init__(
        self, directory: Path, expected_spec: FeatureSpec | None = None, threads: int = 1, trust: Trust | None = None
    ) -> None:
        verified = VerifiedManifest(Path(directory), expected_spec, trust)
        self.directory = verified.directory
        self.manifest: ArtifactManifest = verified.manifest
        self.spec: FeatureSpec = verified.spec
        self.ref: ModelRef = verified.ref
        self._session = load_session(self.directory / ONNX_FILE, self.manifest, threads)
        self.threshold = self.manifest.threshold
        self._probe()

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

    def _probe(self) -> None:
        """Score one row (zeros / padding): a model that cannot is refused now, not at the first window."""
        from minerlens_core.features import VOCAB_SIZE

        m = self.manifest
        width = m.sequence_length if m.input_kind == "sequence" else self.n_features
        if not width:
            msg = f"{self.directory}: a {m.input_kind} model without an input width (sequence_length)"
            raise ArtifactError(msg)
        row = np.full((1, width), VOCAB_SIZE) if m.input_kind == "sequence" else np.zeros((1, width))
        try:
            (out,) = self._session.run([m.onnx_output], {m.onnx_input: _as_input(row, m)})
            out = np.asarray(out, dtype=np.float64)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Exception subclasses
            msg = f"{self.directory / ONNX_FILE}: does not score a probe row: {_first_line(exc)}: refusing the artifact"
            raise ArtifactError(msg) from None
        column = out.ndim == 2 and out.shape[0] == 1 and out.shape[1] > m.onnx_positive_column
        if not (column or out.size == 1):
            msg = (
                f"{self.directory / ONNX_FILE}: output {m.onnx_output!r} has shape {out.shape}, "
                f"no column {m.onnx_positive_column} to score: refusing the artifact"
            )
            raise ArtifactError(msg)


def _as_input(row: npt.NDArray[np.generic], m: ArtifactManifest) -> npt.NDArray[np.generic]:
    dtype = np.int64 if m.input_kind == "sequence" else np.float32
    return np.ascontiguousarray(np.asarray(row, dtype=dtype))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def load_session(path: Path, manifest: ArtifactManifest, threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime session of exactly the bytes the (verified) manifest vouches for, re-hashed as read.

    ``ArtifactIntegrityError`` if the file changed since verification, ``ArtifactError`` if ONNX Runtime
    cannot load it or its inputs/outputs are not the ones the manifest names.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        msg = f"{path}: unreadable: {exc.strerror or exc}"
        raise ArtifactIntegrityError(msg) from None
    if hashlib.sha256(data).hexdigest() != manifest.files.get(ONNX_FILE):
        msg = f"{path}: changed while it was being verified (sha256 differs from the manifest): refusing it"
        raise ArtifactIntegrityError(msg)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Exception subclasses
        msg = f"{path}: ONNX Runtime cannot load it ({_first_line(exc)}): refusing the artifact"
        raise ArtifactError(msg) from None
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if manifest.onnx_input not in inputs or manifest.onnx_output not in outputs:
        msg = (
            f"{path}: inputs {inputs} / outputs {outputs}, the manifest names input {manifest.onnx_input!r} "
            f"and output {manifest.onnx_output!r}: refusing the artifact"
        )
        raise ArtifactError(msg)
    return session


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
