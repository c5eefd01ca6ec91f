from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.siem.fake_hec import FakeHec, serve_fake_hec


@pytest.fixture
async def hec() -> AsyncIterator[FakeHec]:
    """A running fake Splunk HEC; set ``fail_first`` / ``fail_status`` / ``reject_marker`` to make it misbehave."""
    async with serve_fake_hec() as fake:
        yield fake
