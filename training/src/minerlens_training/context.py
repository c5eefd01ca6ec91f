"""Context dropout and quiet twins: what a detector is trained on besides the windows themselves.

Context dropout: train on every window twice, with and without its resource samples and fd kinds.

Traces imported from strace, perf, sysdig or Tetragon have timestamps but no resource samples and no fd
kinds (``res.has`` = 0, ``io.has_fd_kind`` = 0). A model that only ever saw full windows has no idea what to
do with those NaNs (a tree sends them down an arbitrary branch), so its scores on such traces would mean
nothing. With context dropout the training rows are the windows (``Dataset.X``) plus the same windows as
such a source gives them (``Dataset.X_bare``, see ``datasets.strip_context``), with the same labels and
groups: the model learns both, and ``window_bare`` metrics say how it does on bare windows.

Quiet twins (identity dropout): every window with resource samples is also trained on as a twin whose
*syscall-identity* features (which syscalls, in which order: ``freq*``, ``ngram*``, ``cheap_share`` and the
per-syscall rates) are zero, with the same label; what the pod does stays (CPU, threads, memory, sockets,
socket/file I/O rates, syscall volume, timing). Without them a model learns each training miner's own
syscalls (XMRig's `epoll_wait` timers, `sched_yield` per hash) and misses a miner that makes none of those —
a cpuminer-like miner whose 2-s windows hold no syscall at all, scored like a quiet benign pod. With them it
must also separate miners from benign pods by behaviour alone, which is what it falls back on for a window
with (almost) no syscalls. Measured on the lab with families and miner implementations held out:
docs/evaluation.md ("Quiet twins").
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from minerlens_core.features.gates import gated_mask

from minerlens_training.calibration import Inputs
from minerlens_training.datasets import Dataset

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


def with_bare_rows(ds: Dataset, rows: I64, X: F32, full: I64 | None = None) -> tuple[F32, I64, I64]:
    """(features, labels, source row of each) of ``full`` (default: ``rows``) followed by the bare twins of
    ``rows`` (where one exists): a gate may leave a window's full row out of training but not its bare twin."""
    full = rows if full is None else full
    if ds.X_bare is None or ds.bare_ok is None:
        return X[full], ds.y[full], full
    extra = rows[ds.bare_ok[rows]]
    return (
        np.concatenate([X[full], ds.X_bare[extra]]).astype(np.float32, copy=False),
        np.concatenate([ds.y[full], ds.y[extra]]),
        np.concatenate([full, extra]),
    )


IDENTITY_PREFIXES = ("freq.", "freq_nocheap.", "ngram", "cheap_share")
IDENTITY_RATES = frozenset(
    {"rate.futex", "rate.sched_yield", "rate.mmap", "rate.munmap", "rate.madvise", "rate.read", "rate.write"}
    | {"rate.epoll_wait", "rate.sleep"}
)
"""per-syscall rates: which syscalls, like the frequencies (``rate.syscalls_per_s`` is volume, not identity)"""
RES_HAS = "res.has"


def identity_columns(names: tuple[str, ...] | list[str]) -> I64:
    """The columns that say *which* syscalls a window made (zero in a quiet twin)."""
    return np.array(
        [i for i, n in enumerate(names) if n.startswith(IDENTITY_PREFIXES) or n in IDENTITY_RATES], np.int64
    )


def with_quiet_twins(
    names: tuple[str, ...] | list[str], X: F32, y: I64, src: I64, eligible: npt.NDArray[np.bool_] | None
) -> tuple[F32, I64, I64, npt.NDArray[np.bool_] | None]:
    """``X`` (labels ``y``, source rows ``src``) followed by the quiet twins of its rows with resource samples
    (``res.has`` = 1): the same row with the syscall-identity columns at zero, the same label and source row
    (so calibration groups them with their window), eligible for the threshold when their window is."""
    if RES_HAS not in names:
        return X, y, src, eligible
    full = np.flatnonzero(X[:, list(names).index(RES_HAS)] == 1.0)
    twins = X[full].copy()
    twins[:, identity_columns(names)] = 0.0
    return (
        np.concatenate([X, twins]).astype(np.float32, copy=False),
        np.concatenate([y, y[full]]),
        np.concatenate([src, src[full]]),
        None if eligible is None else np.concatenate([eligible, eligible[full]]),
    )


def bare_rows(ds: Dataset, rows: I64) -> I64:
    """The rows (of ``rows``) that have a bare twin."""
    if ds.bare_ok is None:
        return rows[:0]
    return rows[ds.bare_ok[rows]]


def training_rows(
    ds: Dataset,
    rows: I64,
    X: Inputs,
    *,
    gate: str = "none",
    dropout: bool = False,
    exclude_gated: bool = True,
    quiet: bool = False,
) -> tuple[Inputs, I64, I64, npt.NDArray[np.bool_] | None]:
    """What a detector is fitted and calibrated on (``minerlens train`` and every evaluation split alike):
    (inputs, labels, source row of each, windows that can alert or None without a gate).

    ``rows`` of ``X`` (feature vectors or sequences); the windows the decision ``gate`` closes are left out
    (``exclude_gated``) but, with ``dropout``, the bare twins of all ``rows`` are added (never gated); the
    threshold is then calibrated on the windows the gate leaves open (``eligible``). Sequence inputs: gate none.
    ``quiet``: the quiet twins of those rows (feature vectors only) are added last (``with_quiet_twins``).
    """
    full = rows[~ds.gated(gate)[rows]] if exclude_gated else rows
    X_tr: Inputs
    if dropout:
        X_tr, y, src = with_bare_rows(ds, rows, X, full)  # type: ignore[arg-type]
    else:
        X_tr, y, src = X[full], ds.y[full], full
    eligible = ~gated_mask(gate, ds.spec.names, X_tr) if gate != "none" else None
    if quiet and X_tr.ndim == 2 and X_tr.shape[1] == ds.spec.dim:
        return with_quiet_twins(ds.spec.names, X_tr, y, src, eligible)  # type: ignore[arg-type]
    return X_tr, y, src, eligible
