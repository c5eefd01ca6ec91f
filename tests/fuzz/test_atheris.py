"""Coverage-guided fuzzing (atheris) of every boundary with the CI budget: ``MINERLENS_FUZZ_ATHERIS_RUNS``
inputs each (1,000 by default; ``make fuzz`` runs 100,000). A crash fails the test and shows the log."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fuzz.run import atheris_run
from tests.fuzz.targets import BOUNDARIES

pytest.importorskip("atheris")
RUNS = int(os.environ.get("MINERLENS_FUZZ_ATHERIS_RUNS", "1000"))


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_atheris_finds_no_crash(boundary: str, tmp_path: Path) -> None:
    executed, crashes, seconds, tail = atheris_run(boundary, RUNS, tmp_path)
    print(f"\nfuzz[atheris] {boundary}: {executed} inputs, {crashes} crashes, {seconds:.1f} s")
    assert crashes == 0, tail
    assert executed >= RUNS, tail
