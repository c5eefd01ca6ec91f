"""A lab dataset directory as a labelled window matrix.

Every ``ok`` run of ``DIR/manifest.json`` is read with ``read_trace``, cut into windows by
``windows_from_trace`` and vectorised by ``vectorize_many`` (the one feature library; nothing is
re-implemented here). The same pass keeps each window's syscall-id sequence (``window_sequence``:
the non-cheap ids, tail) for the sequence models, as a left-padded matrix (``pad_sequences``).

**Windows and labels.** A window is either a *pod window* (the whole (pod, container) stream in one
slot) or a *process window* (the same slot restricted to one process: ``Window.pid`` is an int). Each
row carries ``pid`` (-1 for pod windows), ``comm``, its syscall ``count``, its time span and its
alert *stream* (a pod's pod windows form one stream, as the scorer keys alerts by pod; each process
of a pod is a stream of its own). The label of a row (``Dataset.y``) follows one rule:

* a pod window takes its run's label;
* a process window of a miner run is ``miner`` iff its ``comm`` is in the run's ``miner_comms``
  (manifest ``facts["miner_comms"]``); when the run lists none, it takes the run's label;
* every window of a benign run is benign.

The feature library does not emit process windows yet: ``pid``/``comm`` are read with ``getattr``
defaults (None / ""), so today every row is a pod window and process windows are picked up as soon as
``windows_from_trace`` yields them.

**Runs.** Runs that produce no window (a quiet miner makes a few hundred syscalls in 10 s, less than one
1000-syscall window) are kept in ``runs`` with ``n_windows == 0``: trace-level metrics count them as
missed, which is what a deployed detector would do with them. ``RunInfo.implementation`` is the
manifest's miner implementation, or, for manifests written before that field existed, derived from the
family (``miner-xmrig`` -> ``xmrig``, any other miner family -> ``minerlens-c``).

**Order-only view** (``order_only=True``): timestamps, resource samples and fd kinds are dropped from
every trace before windowing, so a count-window model is trained on what an order-only trace (strace
without ``-t``, a ``names`` file) gives it at scoring time.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from minerlens_core.datasets.manifest import MANIFEST_JSON
from minerlens_core.digests import sha256_file
from minerlens_core.features import FeatureSpec, Window, vectorize_many, window_sequence, windows_from_trace
from minerlens_core.features.gates import gated_mask
from minerlens_core.models.onnx_model import pad_sequences
from minerlens_core.traces import Trace

from minerlens_training.dataset_runs import C_MINERS as C_MINERS
from minerlens_training.dataset_runs import MINER as MINER
from minerlens_training.dataset_runs import XMRIG_FAMILY as XMRIG_FAMILY
from minerlens_training.dataset_runs import RunInfo as RunInfo
from minerlens_training.dataset_runs import implementation_group as implementation_group
from minerlens_training.dataset_runs import implementation_of as implementation_of
from minerlens_training.dataset_runs import iter_traces as iter_traces
from minerlens_training.dataset_runs import miner_comms_of as miner_comms_of
from minerlens_training.errors import DatasetError

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I16 = npt.NDArray[np.int16]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]
Str = npt.NDArray[np.str_]
InputKind = Literal["features", "sequence"]
Progress = Callable[[str], None]

POD = -1
"""``Dataset.pid`` of a pod window"""
SEQUENCE_CAP = 256
"""syscall ids kept per window in ``Dataset.sequences`` (sequence models read the tail they need)"""
RES_HAS = "res.has"
"""the feature that says a window carries its pod's resource use (feature spec v2)"""


def _empty(dtype: Any) -> npt.NDArray[Any]:
    return np.zeros(0, dtype)


@dataclass(frozen=True)
class Dataset:
    """Windows of a lab dataset. Rows of ``X`` are grouped by run, each run's rows in trace (stream, window) order."""

    X: F32
    y: I64
    """per-window label (the label rule of the module docstring)"""
    run: I64
    """index into ``runs`` of each window"""
    runs: tuple[RunInfo, ...]
    spec: FeatureSpec
    manifest_sha256: str
    """sha256 of ``manifest.json``: identifies the training data (it holds every trace's sha256)"""
    source: str
    sequences: I16 = field(default_factory=lambda: np.zeros((0, SEQUENCE_CAP), np.int16))
    """(n, cap) syscall ids of each window (``window_sequence``), right-aligned, left-padded with ``VOCAB_SIZE``;
    (n, 0) when the dataset was loaded without sequences"""
    pid: I64 = field(default_factory=lambda: _empty(np.int64))
    """process id of a process window, ``POD`` (-1) for a pod window"""
    comm: Str = field(default_factory=lambda: _empty(np.str_))
    count: I64 = field(default_factory=lambda: _empty(np.int64))
    """syscalls in the window (0 is possible: a slot where the pod burnt CPU without a syscall)"""
    start_ns: I64 = field(default_factory=lambda: _empty(np.int64))
    """window span start (ns since the epoch), -1 when the trace has no time"""
    end_ns: I64 = field(default_factory=lambda: _empty(np.int64))
    stream: I64 = field(default_factory=lambda: _empty(np.int64))
    """alert stream of the window: one per (run, pod) for pod windows, one per (run, pod, pid) for process windows"""
    order_only: bool = False
    """timestamps, resource samples and fd kinds were dropped before windowing"""
    X_bare: F32 | None = None
    """the same windows as a source without resource samples and fd kinds sees them (``strip_context``);
    rows of windows that need the samples to exist (0 syscalls) are NaN and ``bare_ok`` False. None: not built"""
    bare_ok: Bool | None = None

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @cached_property
    def is_process(self) -> Bool:
        return np.asarray(self.pid != POD, np.bool_)

    @cached_property
    def has_resources(self) -> Bool:
        """Windows that carry their pod's resource use (feature ``res.has`` = 1): the scorer scores them even
        with fewer than ``min_syscalls`` syscalls. All False for specs without resource features."""
        if RES_HAS not in self.spec.names or self.X.shape[1] != self.spec.dim:
            return np.zeros(len(self), np.bool_)
        return np.asarray(self.X[:, self.spec.names.index(RES_HAS)] == 1.0, np.bool_)

    def gated(self, gate: str) -> Bool:
        """Windows whose decision the model's decision ``gate`` makes benign (``minerlens_core.features.gates``)."""
        if gate == "none" or self.X.shape[1] != self.spec.dim:
            return np.zeros(len(self), np.bool_)
        if gate == "network":
            return self._offline
        return gated_mask(gate, self.spec.names, self.X)  # raises: unknown gate

    @cached_property
    def _offline(self) -> Bool:
        return gated_mask("network", self.spec.names, self.X)

    @property
    def run_y(self) -> I64:
        """The run label of each window (differs from ``y`` on benign processes of miner runs)."""
        return np.array([r.y for r in self.runs] or [0], np.int64)[self.run] if len(self.runs) else _empty(np.int64)

    def inputs(self, kind: InputKind) -> F32 | I16:
        """What a detector with this ``input_kind`` reads: feature vectors or id sequences."""
        if kind != "sequence":
            return self.X
        if self.sequences.shape[0] != len(self) or self.sequences.shape[1] == 0:
            msg = "this dataset was loaded without syscall sequences (load_dataset(..., sequences=True))"
            raise DatasetError(msg)
        return self.sequences

    def column(self, field: str) -> Str:
        """A per-window array of a run attribute (``workload``, ``family``, ``run_id``, ``variant``, ``label``...)."""
        per_run = np.array([str(getattr(r, field)) for r in self.runs] or [""], dtype=np.str_)
        return per_run[self.run] if len(self.runs) else np.array([], dtype=np.str_)

    def families(self, label: str) -> list[str]:
        return sorted({r.family for r in self.runs if r.label == label})

    def implementations(self) -> list[str]:
        """Miner implementation groups (versions folded: ``xmrig-6.16.0`` and ``xmrig-6.21`` are one)."""
        return sorted({r.implementation_group for r in self.runs if r.label == MINER})

    def subset(self, rows: I64) -> tuple[F32, I64]:
        return self.X[rows], self.y[rows]

    def run_rows(self, i: int) -> I64:
        r = self.runs[i]
        return np.arange(r.start, r.start + r.n_windows, dtype=np.int64)


@dataclass(frozen=True)
class Block:
    """The rows of one run: feature vectors, sequences and what each window is (pod or process, when, how big)."""

    X: F32
    S: I16
    pid: I64
    comm: list[str]
    count: I64
    start_ns: I64
    end_ns: I64
    pod: list[str]
    X_bare: F32 | None = None

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @classmethod
    def of_windows(cls, windows: Sequence[Window], X: F32, S: I16) -> Block:
        pids = [getattr(w, "pid", None) for w in windows]  # per-process windows: not in the feature library yet
        return cls(
            X=X,
            S=S,
            pid=np.array([POD if p is None else int(p) for p in pids], np.int64),
            comm=[str(getattr(w, "comm", "") or "") for w in windows],
            count=np.array([w.count for w in windows], np.int64),
            start_ns=np.array([-1 if w.start_ns is None else w.start_ns for w in windows], np.int64),
            end_ns=np.array([-1 if w.end_ns is None else w.end_ns for w in windows], np.int64),
            pod=[w.pod_uid for w in windows],
        )

    @classmethod
    def plain(cls, X: F32, S: I16) -> Block:
        """Rows that are not windows of a stream (the paper's frames): one pod stream, no time."""
        n = int(X.shape[0])
        return cls(
            X=X,
            S=S,
            pid=np.full(n, POD, np.int64),
            comm=[""] * n,
            count=np.full(n, S.shape[1] if S.ndim == 2 else 0, np.int64),
            start_ns=np.full(n, -1, np.int64),
            end_ns=np.full(n, -1, np.int64),
            pod=[""] * n,
        )


def manifest_digest(directories: Sequence[Path]) -> str:
    """sha256 of the dataset manifest (one directory), or of the ordered list of their sha256s (several)."""
    digests = [sha256_file(Path(d) / MANIFEST_JSON) for d in directories]
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def order_only_view(trace: Trace) -> Trace:
    """The trace as an order-only source shows it: no timestamps, no resource samples, no fd kinds."""
    table = trace.table
    for name in ("ts_ns", "fd_kind"):
        if name in table.schema.names:
            i = table.schema.get_field_index(name)
            table = table.set_column(i, table.schema.field(i), pa.nulls(table.num_rows, table.schema.field(i).type))
    changes: dict[str, Any] = {"table": table, "meta": trace.meta.model_copy(update={"has_time": False})}
    if "resources" in {f.name for f in dataclasses.fields(trace)}:
        changes["resources"] = []
    return replace(trace, **changes)


def load_dataset(
    directories: Path | Sequence[Path],
    spec: FeatureSpec | None = None,
    sequence_cap: int = SEQUENCE_CAP,
    *,
    sequences: bool = True,
    order_only: bool = False,
    bare: bool = False,
    progress: Progress | None = None,
) -> Dataset:
    """Featurise every ok run of one or more lab datasets (``minerlens lab run`` outputs) with ``spec``.

    Several directories are concatenated in the given order (a dataset captured in parts); a run id that
    repeats gets ``@<directory index>`` appended. ``sequence_cap`` ids of each window's sequence are kept
    (``sequences=False``: none, which is faster when no sequence model reads them). ``bare``: also build
    ``X_bare``, the windows without resource samples and fd kinds (context dropout, degraded-input metrics).
    ``progress`` is called after each run.
    """
    spec = spec or FeatureSpec.default()
    width = sequence_cap if sequences else 0

    def rows(trace: Trace) -> Block:
        windows = list(windows_from_trace(trace, spec.window))
        if sequences:
            seqs = [window_sequence(w, spec.params, sequence_cap) for w in windows]
            S = pad_sequences(seqs, sequence_cap).astype(np.int16)
        else:
            S = np.zeros((len(windows), 0), np.int16)
        block = Block.of_windows(windows, vectorize_many(windows, spec), S)
        return replace(block, X_bare=bare_features(windows, spec)) if bare else block

    return build_dataset(directories, spec, rows, spec.dim, width, order_only=order_only, progress=progress)


def strip_context(w: Window) -> Window | None:
    """``w`` as a source without resource samples or fd kinds (strace, imported traces) would give it; None for
    a window that exists only through its samples (no syscall)."""
    if w.count == 0:
        return None
    return replace(w, res=None, fdk=None, comm="", exe="")


def bare_features(windows: Sequence[Window], spec: FeatureSpec) -> F32:
    """Feature rows of the stripped windows, aligned with ``windows`` (NaN where ``strip_context`` gives None)."""
    out = np.full((len(windows), spec.dim), np.nan, np.float32)
    keep = [i for i, w in enumerate(windows) if w.count > 0]
    if keep:
        out[keep] = vectorize_many([strip_context(windows[i]) for i in keep], spec)  # type: ignore[misc]
    return out


RowsOfTrace = Callable[[Trace], Block]
"""the rows of one run"""


def build_dataset(
    directories: Path | Sequence[Path],
    spec: FeatureSpec,
    rows: RowsOfTrace,
    dim: int,
    width: int,
    *,
    order_only: bool = False,
    progress: Progress | None = None,
) -> Dataset:
    """A ``Dataset`` whose rows for each ok run are ``rows(trace)`` (``dim`` columns of ``X``, ``width`` ids)."""
    dirs = [Path(directories)] if isinstance(directories, str | Path) else [Path(d) for d in directories]
    if not dirs:
        msg = "no dataset directory given"
        raise DatasetError(msg)
    blocks: list[Block] = []
    runs: list[RunInfo] = []
    labels: list[I64] = []
    streams: list[I64] = []
    n_streams = 0
    seen: set[str] = set()
    for k, directory in enumerate(dirs):
        for run, trace in iter_traces(directory):
            block = rows(order_only_view(trace) if order_only else trace)
            run_id = run.run_id if run.run_id not in seen else f"{run.run_id}@{k}"
            seen.add(run_id)
            start = sum(r.n_windows for r in runs)
            run = replace(run, run_id=run_id, start=start, n_windows=len(block))
            runs.append(run)
            blocks.append(block)
            is_proc = block.pid != POD
            labels.append(
                np.array([run.window_label(bool(p), c) for p, c in zip(is_proc, block.comm, strict=True)], np.int64)
            )
            keys = [(pod, int(pid)) for pod, pid in zip(block.pod, block.pid.tolist(), strict=True)]
            ids = {key: n_streams + j for j, key in enumerate(dict.fromkeys(keys))}
            n_streams += len(ids)
            streams.append(np.array([ids[key] for key in keys], np.int64))
            if progress is not None:
                progress(f"{run_id}: {len(block)} windows")
    if not runs:
        msg = f"{', '.join(map(str, dirs))}: no ok miner/benign run"
        raise DatasetError(msg)
    total = sum(r.n_windows for r in runs)

    def cat(parts: list[npt.NDArray[Any]], dtype: Any, shape: tuple[int, ...] = (0,)) -> npt.NDArray[Any]:
        return np.concatenate(parts).astype(dtype, copy=False) if total else np.zeros(shape, dtype)

    run_idx = np.repeat(np.arange(len(runs), dtype=np.int64), [r.n_windows for r in runs])
    bares = [b.X_bare for b in blocks]
    X_bare = None
    if blocks and all(x is not None for x in bares):
        X_bare = cat([x for x in bares if x is not None], np.float32, (0, dim))
    return Dataset(
        X=cat([b.X for b in blocks], np.float32, (0, dim)),
        y=cat(labels, np.int64),
        run=run_idx,
        runs=tuple(runs),
        spec=spec,
        manifest_sha256=manifest_digest(dirs),
        source=",".join(str(d) for d in dirs),
        sequences=cat([b.S for b in blocks], np.int16, (0, width)),
        pid=cat([b.pid for b in blocks], np.int64),
        comm=np.array([c for b in blocks for c in b.comm], dtype=np.str_) if total else _empty(np.str_),
        count=cat([b.count for b in blocks], np.int64),
        start_ns=cat([b.start_ns for b in blocks], np.int64),
        end_ns=cat([b.end_ns for b in blocks], np.int64),
        stream=cat(streams, np.int64),
        order_only=order_only,
        X_bare=X_bare,
        bare_ok=None if X_bare is None else ~np.isnan(X_bare).all(axis=1),
    )
