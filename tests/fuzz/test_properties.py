"""Property-based fuzzing (hypothesis) of every boundary: importers, trace files, topic decoders, the
featurizer's engine and the explainer's API.

Each test draws hostile inputs made from valid ones (``tests/fuzz/strategies.py``) and runs them
through the boundary's target (``tests/fuzz/targets.py``), which fails on any undocumented outcome.
The budget is the ``MINERLENS_FUZZ_PROFILE`` profile (``tests/fuzz/settings.py``): bounded in CI,
100,000 inputs per boundary with ``make fuzz``. Counts are printed per boundary (``-s``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

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
    OUTCOMES.clear()
    for data in seeds(boundary):
        run(data)
    n = len(seeds(boundary))
    if boundary == "featurizer":  # every sequence makes windows (and a dead letter would be a seed's bug)
        assert dict(OUTCOMES) == {"processed, windows out": n}
    if boundary == "api":  # every route answers 200 (the last two seeds: a token unknown, a role too low)
        assert dict(OUTCOMES) == {"200": n - 2, "401": 1, "403": 1}
    if boundary in seed_data.MESSAGE_SEEDS:
        from minerlens_core.schemas.events import decode_syscall_stream
        from minerlens_core.schemas.explanations import Explanation
        from minerlens_core.schemas.ocsf import decode_finding
        from minerlens_core.schemas.windows import decode_verdict, decode_window

        decoders: dict[str, Callable[[str], object]] = {
            "syscalls": decode_syscall_stream,
            "windows": decode_window,
            "verdicts": decode_verdict,
            "alerts": decode_finding,
            "explanations": Explanation.model_validate_json,
        }
        for message in seed_data.message_seeds(boundary):
            decoders[boundary](json.dumps(message))  # raises if a seed no longer fits the contract


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


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/models", 200),
        ("/v1/pods/../models", 422),  # a server passes dot segments (namespace ".."), a client would remove them
        ("//v1/models", 404),  # a path, not a host
        ("/v1/pods/team-a/miner-1/%00", 404),
        ("/v1/pods/te%41m-a/miner-1", 422),  # decoded: "teAm-a", not a DNS-1123 label
    ],
)
def test_api_requests_reach_the_app_as_a_server_passes_them(path: str, status: int) -> None:
    from tests.fuzz.api_target import api, parse, unparse

    response = api().send(parse(unparse("GET", path)))
    assert response.status_code == status, response.text
