"""Property-based fuzzing (hypothesis) of every boundary: importers, trace files, topic decoders.

Each test draws hostile inputs made from valid ones (``tests/fuzz/strategies.py``) and runs them
through the boundary's target (``tests/fuzz/targets.py``), which fails on any undocumented outcome.
The budget is the ``MINERLENS_FUZZ_PROFILE`` profile (``tests/fuzz/settings.py``): bounded in CI,
100,000 inputs per boundary with ``make fuzz``. Counts are printed per boundary (``-s``).
"""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given

from tests.fuzz import seeds as seed_data
from tests.fuzz.settings import PROFILE, fuzz_settings
from tests.fuzz.strategies import strategy
from tests.fuzz.targets import BOUNDARIES, OUTCOMES, seeds, target


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_seeds_are_valid(boundary: str) -> None:
    """The starting points are accepted as they are (else the fuzzers would explore only refusals)."""
    run = target(boundary)
    for data in seeds(boundary):
        run(data)
    if boundary in seed_data.MESSAGE_SEEDS:
        from minerlens_core.schemas.events import decode_syscall_stream
        from minerlens_core.schemas.explanations import Explanation
        from minerlens_core.schemas.ocsf import decode_finding
        from minerlens_core.schemas.windows import decode_verdict, decode_window

        decode = {
            "syscalls": decode_syscall_stream,
            "windows": decode_window,
            "verdicts": decode_verdict,
            "alerts": decode_finding,
            "explanations": Explanation.model_validate_json,
        }[boundary]
        for message in seed_data.message_seeds(boundary):
            decode(json.dumps(message))  # raises if a seed no longer fits the contract


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_boundary_survives_hostile_input(boundary: str) -> None:
    run = target(boundary)
    count = 0

    @fuzz_settings
    @given(data=strategy(boundary))
    def fuzz(data: bytes) -> None:
        nonlocal count
        count += 1
        run(data)

    started = time.monotonic()
    OUTCOMES.clear()
    fuzz()
    outcomes = ", ".join(f"{k}={v}" for k, v in sorted(OUTCOMES.items()))
    print(f"\nfuzz[hypothesis:{PROFILE}] {boundary}: {count} inputs, 0 crashes, {time.monotonic() - started:.1f} s")
    print(f"    outcomes: {outcomes}")
    assert count > 0
