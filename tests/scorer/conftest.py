"""Session fixtures: real artifacts trained once on the committed sample (1-s time windows)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from minerlens_scorer.model_set import ModelSet, build_model_set, load_model

from tests.scorer.helpers import SAMPLE, train_artifacts


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not (SAMPLE / "manifest.json").is_file():
        pytest.skip("data/sample is missing")
    return train_artifacts(tmp_path_factory.mktemp("scorer-artifacts"))


@pytest.fixture
def models_dir(trained: dict[str, Path], tmp_path: Path) -> Path:
    """A fresh models directory holding a copy of the xgboost artifact."""
    root = tmp_path / "models"
    root.mkdir()
    shutil.copytree(trained["xgboost"], root / "xgboost-time1s")
    return root


@pytest.fixture(scope="session")
def xgb_set(trained: dict[str, Path]) -> ModelSet:
    return build_model_set([load_model(trained["xgboost"])])
