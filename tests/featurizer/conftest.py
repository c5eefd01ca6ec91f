"""Fixtures of the featurizer tests."""

from __future__ import annotations

import uuid

import pytest
from minerlens_core.features import FeatureSpec, WindowPolicy
from minerlens_core.models import VerifiedManifest
from minerlens_featurizer.settings import FeaturizerSettings

from tests.featurizer.streams import MODEL


@pytest.fixture
def settings(tmp_path) -> FeaturizerSettings:
    return FeaturizerSettings(
        app_id=f"test-featurizer-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path / "featurizer",
        web_enabled=False,
        store="memory://",
        standby_replicas=0,
    )


@pytest.fixture(scope="session")
def artifact_spec() -> FeatureSpec:
    """The spec of the committed model artifact (verified), else the same policy built here."""
    if (MODEL / "manifest.json").is_file():
        return VerifiedManifest(MODEL).spec
    return FeatureSpec.build(window=WindowPolicy.time(1.0))


@pytest.fixture(scope="session")
def time_spec() -> FeatureSpec:
    return FeatureSpec.build(window=WindowPolicy.time(1.0))


@pytest.fixture(scope="session")
def count_spec() -> FeatureSpec:
    return FeatureSpec.build(window=WindowPolicy.count(200))
