"""A lab dataset directory as a labelled window matrix.

Every ``ok`` run of ``DIR/manifest.json`` is read with ``read_trace``, cut into windows by
``windows_from_trace`` and vectorised by ``vectorize_many`` (the one feature library; nothing is
re-implemented here). The same pass keeps each window's syscall-id sequence (``window_sequence``:
the non-cheap ids, tail) for the sequence models, as a left-padded matrix (``pad_sequences``).

Runs that produce no window (a quiet miner makes a few hundred syscalls in 10 s, less than one
1000-syscall window) are kept in ``runs`` with ``n_windows == 0``: trace-level metrics count them as
missed, which is what a deployed detector would do with them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from minerlens_core.digests import sha256_file
from minerlens_core.errors import TraceFormatError
from minerlens_core.features import FeatureSpec, vectorize_many, window_sequence, windows_from_trace
from minerlens_core.models.onnx_model import pad_sequences
from minerlens_core.traces import Trace, read_trace
from minerlens_lab.manifest import MANIFEST_JSON, load_manifest

from minerlens_training.errors import DatasetError

F32 = npt.NDArray[np.float32]
I16 = npt.NDArray[np.int16]
I64 = npt.NDArray[np.int64]
Str = npt.NDArray[np.str_]
InputKind = Literal["features", "sequence"]

MINER = "miner"
SEQUENCE_CAP = 256
"""syscall ids kept per window in ``Dataset.sequences`` (sequence models read the tail they need)"""
_NOISE = re.compile(r"noise-(\d+)")


@dataclass(frozen=True)
class RunInfo:
    """One captured run (a trace file) and where its windows are in the matrix."""

    run_id: str
    workload: str
    family: str
    label: str
    variant: str
    repeat: int
    syscalls: int
    start: int
    """first row of this run's windows in ``X``"""
    n_windows: int

    @property
    def y(self) -> int:
        return int(self.label == MINER)

    @property
    def noise(self) -> int | None:
        """Injected-noise share in percent for miners (0 without a noise thread), None for benign runs."""
        if self.label != MINER:
            return None
        m = _NOISE.search(self.variant)
        return int(m.group(1)) if m else 0

    @property
    def throttled(self) -> bool:
        return self.variant.startswith("throttle-")


@dataclass(frozen=True)
class Dataset:
    """Windows of a lab dataset. Rows of ``X`` are grouped by run, in trace (stream, window) order."""

    X: F32
    y: I64
    run: I64
    """index into ``runs`` of each window"""
    runs: tuple[RunInfo, ...]
    spec: FeatureSpec
    manifest_sha256: str
    """sha256 of ``manifest.json``: identifies the training data (it holds every trace's sha256)"""
    source: str
    sequences: I16 = field(default_factory=lambda: np.zeros((0, SEQUENCE_CAP), np.int16))
    """(n, cap) syscall ids of each window (``window_sequence``), right-aligned, left-padded with ``VOCAB_SIZE``"""

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def inputs(self, kind: InputKind) -> F32 | I16:
        """What a detector with this ``input_kind`` reads: feature vectors or id sequences."""
        return self.sequences if kind == "sequence" else self.X

    def column(self, field: str) -> Str:
        """A per-window array of a run attribute (``workload``, ``family``, ``run_id``, ``variant``, ``label``)."""
        per_run = np.array([str(getattr(r, field)) for r in self.runs] or [""], dtype=np.str_)
        return per_run[self.run] if len(self.runs) else np.array([], dtype=np.str_)

    def families(self, label: str) -> list[str]:
        return sorted({r.family for r in self.runs if r.label == label})

    def subset(self, rows: I64) -> tuple[F32, I64]:
        return self.X[rows], self.y[rows]


def manifest_digest(directories: Sequence[Path]) -> str:
    """sha256 of the dataset manifest (one directory), or of the ordered list of their sha256s (several)."""
    digests = [sha256_file(Path(d) / MANIFEST_JSON) for d in directories]
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def load_dataset(
    directories: Path | Sequence[Path], spec: FeatureSpec | None = None, sequence_cap: int = SEQUENCE_CAP
) -> Dataset:
    """Featurise every ok run of one or more lab datasets (``minerlens lab run`` outputs) with ``spec``.

    Several directories are concatenated in the given order (a dataset captured in parts); a run id that
    repeats gets ``@<directory index>`` appended. ``sequence_cap`` ids of each window's sequence are kept.
    """
    spec = spec or FeatureSpec.default()

    def rows(trace: Trace) -> tuple[F32, I16]:
        windows = list(windows_from_trace(trace, spec.window))
        seqs = [window_sequence(w, spec.params, sequence_cap) for w in windows]
        return vectorize_many(windows, spec), pad_sequences(seqs, sequence_cap).astype(np.int16)

    return build_dataset(directories, spec, rows, spec.dim, sequence_cap)


RowsOfTrace = Callable[[Trace], tuple[F32, I16]]
"""the rows of one run: its ``X`` block and its ``sequences`` block (same length)"""


def build_dataset(
    directories: Path | Sequence[Path], spec: FeatureSpec, rows: RowsOfTrace, dim: int, width: int
) -> Dataset:
    """A ``Dataset`` whose rows for each ok run are ``rows(trace)`` (``dim`` columns of ``X``, ``width`` ids)."""
    dirs = [Path(directories)] if isinstance(directories, str | Path) else [Path(d) for d in directories]
    if not dirs:
        msg = "no dataset directory given"
        raise DatasetError(msg)
    blocks: list[F32] = []
    seq_blocks: list[I16] = []
    runs: list[RunInfo] = []
    seen: set[str] = set()
    for k, directory in enumerate(dirs):
        for run, trace in iter_traces(directory):
            X, S = rows(trace)
            run_id = run.run_id if run.run_id not in seen else f"{run.run_id}@{k}"
            seen.add(run_id)
            start = sum(r.n_windows for r in runs)
            runs.append(replace(run, run_id=run_id, start=start, n_windows=int(X.shape[0])))
            blocks.append(X)
            seq_blocks.append(S)
    if not runs:
        msg = f"{', '.join(map(str, dirs))}: no ok miner/benign run"
        raise DatasetError(msg)
    total = sum(r.n_windows for r in runs)
    X_all = np.concatenate(blocks).astype(np.float32, copy=False) if total else np.zeros((0, dim), np.float32)
    S_all = np.concatenate(seq_blocks).astype(np.int16, copy=False) if total else np.zeros((0, width), np.int16)
    run_idx = np.repeat(np.arange(len(runs), dtype=np.int64), [r.n_windows for r in runs])
    y = np.array([r.y for r in runs], dtype=np.int64)[run_idx]
    return Dataset(
        X=X_all,
        y=y,
        run=run_idx,
        runs=tuple(runs),
        spec=spec,
        manifest_sha256=manifest_digest(dirs),
        source=",".join(str(d) for d in dirs),
        sequences=S_all,
    )


def iter_traces(directory: Path) -> Iterator[tuple[RunInfo, Trace]]:
    """Each ok miner/benign run of a lab dataset with its trace, checked against the manifest
    (``RunInfo.start`` and ``n_windows`` are 0)."""
    try:
        manifest = load_manifest(directory)
    except (OSError, ValueError) as exc:
        msg = f"{directory}: not a lab dataset ({exc})"
        raise DatasetError(msg) from None
    for rec in manifest.runs:
        if rec.status != "ok" or not rec.file or rec.label not in ("miner", "benign"):
            continue
        try:
            trace = read_trace(directory / rec.file)
        except TraceFormatError as exc:
            raise DatasetError(str(exc)) from None
        meta = trace.meta
        if (meta.label, meta.workload, meta.family) != (rec.label, rec.workload, rec.family):
            msg = (
                f"{directory / rec.file}: trace says {meta.label}/{meta.workload}/{meta.family}, the manifest disagrees"
            )
            raise DatasetError(msg)
        info = RunInfo(
            run_id=f"{rec.workload}-r{rec.repeat}",
            workload=rec.workload,
            family=rec.family,
            label=rec.label,
            variant=rec.variant,
            repeat=rec.repeat,
            syscalls=rec.syscalls,
            start=0,
            n_windows=0,
        )
        yield info, trace
