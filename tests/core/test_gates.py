"""The network gate: a window measurably without network (resource samples, no internet socket, no socket I/O)
is gated; anything unknown is not."""

from __future__ import annotations

import math

import numpy as np
import pytest
from minerlens_core.features import FeatureSpec, WindowPolicy
from minerlens_core.features.gates import GATE_COLUMNS, can_gate, gated_mask, offline_mask

SPEC = FeatureSpec.build(WindowPolicy.time(2.0))


def _rows(*cases: tuple[float, float, float, float]) -> np.ndarray:
    names = list(SPEC.names)
    X = np.zeros((len(cases), SPEC.dim), np.float32)
    for i, case in enumerate(cases):
        for col, value in zip(GATE_COLUMNS, case, strict=True):
            X[i, names.index(col)] = value
    return X


def test_only_measured_offline_windows_are_gated() -> None:
    nan = math.nan
    X = _rows(
        (1, 0, 0, 0),  # samples, no socket, no socket I/O: gated
        (1, 0, nan, nan),  # I/O rates unknown (no time): counts as none
        (1, 1, 0, 0),  # a TCP/UDP socket open: a pool is possible
        (1, 0, 0.5, 0),  # socket I/O (a UNIX socket to a proxy counts)
        (1, 0, 0, 0.5),
        (0, nan, 0, 0),  # no resource samples (imported trace): unknown
        (0, 0, 0, 0),
    )
    assert offline_mask(SPEC.names, X).tolist() == [True, True, False, False, False, False, False]
    assert gated_mask("network", SPEC.names, X).tolist() == offline_mask(SPEC.names, X).tolist()
    assert not gated_mask("none", SPEC.names, X).any()
    assert offline_mask(SPEC.names, X[0]).tolist() == [True], "one vector"


def test_specs_without_resource_features_never_gate_and_unknown_gates_fail() -> None:
    v1 = FeatureSpec.build(WindowPolicy.time(2.0), version="1")
    assert can_gate(SPEC.names)
    assert not can_gate(v1.names)
    assert not offline_mask(v1.names, np.zeros((3, v1.dim), np.float32)).any()
    with pytest.raises(ValueError, match="unknown decision gate"):
        gated_mask("firewall", SPEC.names, np.zeros((1, SPEC.dim)))
