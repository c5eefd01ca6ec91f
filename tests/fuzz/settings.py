"""Fuzzing budgets: hypothesis profiles for the property-based fuzz tests.

``MINERLENS_FUZZ_PROFILE`` picks one (default ``ci``): ``ci`` is the bounded budget every test run
spends (a few hundred inputs per boundary), ``long`` the ``make fuzz`` one (``MINERLENS_FUZZ_EXAMPLES``
inputs per boundary, 100,000 by default). The profiles are applied per test (``fuzz_settings``), never
loaded globally, so other hypothesis tests keep their own settings.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings

_COMMON: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
}
settings.register_profile(
    "minerlens-fuzz-ci", max_examples=int(os.environ.get("MINERLENS_FUZZ_CI_EXAMPLES", "300")), **_COMMON
)
settings.register_profile(
    "minerlens-fuzz-long",
    max_examples=int(os.environ.get("MINERLENS_FUZZ_EXAMPLES", "100000")),
    **_COMMON,
)
PROFILE = "minerlens-fuzz-" + os.environ.get("MINERLENS_FUZZ_PROFILE", "ci")
fuzz_settings = settings(settings.get_profile(PROFILE))
