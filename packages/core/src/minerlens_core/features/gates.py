"""Decision gates: facts about a window that rule mining out whatever the model's score.

A miner needs its pool: a pod (or process) that holds no internet socket (listening sockets aside: a
server's listening socket connects it to nothing) and made no socket I/O during a window cannot be
talking stratum in it. The **network gate** turns such a window's decision into
*benign* (its score is kept and shown); it applies only where the collector measured the pod's open
file descriptors (``res.has`` = 1: live capture with resource samples). Imported traces and windows
without samples (``res.has`` = 0) are never gated: their network is unknown.

Training and serving share this code: ``minerlens train --gate network`` calibrates the threshold on the
benign windows the gate leaves open (the only ones that can ever alert), trains on them and their bare
twins, records ``gate`` in the model manifest, and the scorer applies the gate its model names.

What it does not see (docs/known-gaps.md): a miner whose pool connection is held by another pod (a
proxy on the node reached through a shared UNIX socket or a host path) and a miner that opens a socket
only for the instant it submits a share; a pod with *any* socket activity in the window stays open.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

Gate = Literal["none", "network"]
GATES: tuple[Gate, ...] = ("none", "network")
GATE_COLUMNS = ("res.has", "res.sockets_inet", "io.socket_per_s", "io.inet_per_s")
"""the features the network gate reads (a spec without them cannot be gated)"""
OFFLINE_DETAIL = (
    "network gate: no internet socket open and no socket I/O in the window (a miner needs its pool); "
    "scored but not counted towards an alert"
)

Bool = npt.NDArray[np.bool_]


def can_gate(names: Sequence[str]) -> bool:
    """Whether a feature layout has the columns the network gate reads."""
    have = set(names)
    return all(c in have for c in GATE_COLUMNS)


def offline_mask(names: Sequence[str], X: npt.ArrayLike) -> Bool:
    """Per row of ``X`` (laid out as ``names``): True when the window measurably had no network.

    True needs resource samples (``res.has`` = 1), ``res.sockets_inet`` = 0 (no TCP/UDP socket open in the
    pod, or the process for a process window, but listening ones; NaN: the fd table was unreadable) and no
    socket I/O (``io.socket_per_s``, ``io.inet_per_s``: socket-only calls and I/O on socket fds; NaN counts
    as none). Anything unknown or missing: False.
    """
    X2 = np.atleast_2d(np.asarray(X))
    if not can_gate(names):
        return np.zeros(X2.shape[0], np.bool_)
    ix = {n: i for i, n in enumerate(names)}
    col = {c: X2[:, ix[c]].astype(np.float64) for c in GATE_COLUMNS}
    has = col["res.has"] == 1
    inet = col["res.sockets_inet"]
    sock = np.nan_to_num(col["io.socket_per_s"], nan=0.0)
    inet_io = np.nan_to_num(col["io.inet_per_s"], nan=0.0)
    return np.asarray(has & (inet == 0) & (sock == 0) & (inet_io == 0), np.bool_)


def gated_mask(gate: str, names: Sequence[str], X: npt.ArrayLike) -> Bool:
    """Rows whose decision ``gate`` forces to benign (all False for ``none``)."""
    if gate == "network":
        return offline_mask(names, X)
    if gate == "none":
        return np.zeros(np.atleast_2d(np.asarray(X)).shape[0], np.bool_)
    msg = f"unknown decision gate {gate!r} (known: {', '.join(GATES)})"
    raise ValueError(msg)
