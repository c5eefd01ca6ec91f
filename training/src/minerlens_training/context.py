"""Context dropout: train on every window twice, with and without its resource samples and fd kinds.

Traces imported from strace, perf, sysdig or Tetragon have timestamps but no resource samples and no fd
kinds (``res.has`` = 0, ``io.has_fd_kind`` = 0). A model that only ever saw full windows has no idea what to
do with those NaNs (a tree sends them down an arbitrary branch), so its scores on such traces would mean
nothing. With context dropout the training rows are the windows (``Dataset.X``) plus the same windows as
such a source gives them (``Dataset.X_bare``, see ``datasets.strip_context``), with the same labels and
groups: the model learns both, and ``window_bare`` metrics say how it does on bare windows.
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
) -> tuple[Inputs, I64, I64, npt.NDArray[np.bool_] | None]:
    """What a detector is fitted and calibrated on (``minerlens train`` and every evaluation split alike):
    (inputs, labels, source row of each, windows that can alert or None without a gate).

    ``rows`` of ``X`` (feature vectors or sequences); the windows the decision ``gate`` closes are left out
    (``exclude_gated``) but, with ``dropout``, the bare twins of all ``rows`` are added (never gated); the
    threshold is then calibrated on the windows the gate leaves open (``eligible``). Sequence inputs: gate none.
    """
    full = rows[~ds.gated(gate)[rows]] if exclude_gated else rows
    X_tr: Inputs
    if dropout:
        X_tr, y, src = with_bare_rows(ds, rows, X, full)  # type: ignore[arg-type]
    else:
        X_tr, y, src = X[full], ds.y[full], full
    eligible = ~gated_mask(gate, ds.spec.names, X_tr) if gate != "none" else None
    return X_tr, y, src, eligible
