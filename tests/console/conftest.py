"""The console tests reuse the explainer's fixtures: model artifacts, tokens, the real Redis, key prefixes."""

from __future__ import annotations

from tests.explainer.conftest import (  # noqa: F401 - fixtures
    artifacts,
    benign_windows,
    make_settings,
    miner_windows,
    own_redis,
    prefix,
    redis_url,
    tokens,
)
