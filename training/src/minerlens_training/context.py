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
