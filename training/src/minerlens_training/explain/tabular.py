"""A verified feature-model artifact as the SHAP and LIME explainers use it.

Perturbation explainers work in the *imputed* feature space: NaN (rates of windows without
timestamps) is replaced by the pipeline's own imputer first, so every perturbed vector is one the
model can score, and the benign baseline vector is imputed the same way. Scores of imputed vectors
equal the pipeline's scores of the raw vectors (imputation leaves finite values alone).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from minerlens_core.errors import ArtifactError
from minerlens_core.models import Background
from sklearn.pipeline import Pipeline

from minerlens_training.artifacts import LoadedArtifact, load_artifact

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

_EPS = 1e-6


class TabularModel:
    """The native pipeline of a verified artifact, split into imputation and the rest, plus its background."""

    def __init__(self, loaded: LoadedArtifact, background: Background | None = None) -> None:
        if loaded.ref is None or loaded.spec is None:
            msg = "load the artifact with load_artifact() (it verifies the manifest)"
            raise ArtifactError(msg)
        self.loaded = loaded
        self.manifest = loaded.manifest
        self.ref = loaded.ref
        self.spec = loaded.spec
        self.detector = loaded.detector
        self.background = background if background is not None else loaded.background
        if self.background is not None and list(self.background.feature_names) != list(self.spec.names):
            msg = "the background's feature names differ from the model's"
            raise ArtifactError(msg)
        pipe: Pipeline = self.detector.pipeline
        self.pipeline = pipe
        self.model = pipe.steps[-1][1]
        if "n_jobs" in self.model.get_params():
            # one thread per explanation: perturbation batches are small, and OpenMP threads spinning on a
            # busy machine cost more than they give (the service runs one explainer per worker)
            self.model.set_params(n_jobs=1)
        first = pipe.steps[0][0]
        self._imputer: Pipeline | None = pipe[:1] if first == "impute" else None
        self._after_impute: Pipeline = pipe[1:] if first == "impute" else pipe
        self._positive = list(pipe.classes_).index(1)

    @classmethod
    def load(cls, directory: Path, background: Background | None = None) -> TabularModel:
        return cls(load_artifact(Path(directory)), background)

    @property
    def is_tree(self) -> bool:
        """Decision trees, tree ensembles and XGBoost: exact TreeSHAP applies."""
        return any(hasattr(self.model, a) for a in ("get_booster", "tree_", "estimators_"))

    @property
    def is_xgboost(self) -> bool:
        return hasattr(self.model, "get_booster")

    def impute(self, X: npt.ArrayLike) -> F32:
        arr = np.atleast_2d(np.asarray(X, dtype=np.float32))
        if arr.shape[1] != len(self.spec.names):
            msg = f"{self.manifest.model_name}: expected {len(self.spec.names)} features, got {arr.shape[1]}"
            raise ValueError(msg)
        if self._imputer is None:
            return arr
        return np.asarray(self._imputer.transform(arr), dtype=np.float32)

    def before_model(self, X: npt.ArrayLike) -> F32:
        """What the final estimator sees (imputed, and scaled when the pipeline scales)."""
        arr = np.atleast_2d(np.asarray(X, dtype=np.float32))
        return np.asarray(self.pipeline[:-1].transform(arr), dtype=np.float32)

    def score(self, X: npt.ArrayLike) -> F64:
        """Miner probability of raw vectors (NaN allowed)."""
        return self.detector.score(np.atleast_2d(np.asarray(X, dtype=np.float32)))

    def score_imputed(self, Z: npt.ArrayLike) -> F64:
        arr = np.atleast_2d(np.asarray(Z, dtype=np.float32))
        if arr.shape[0] == 0:
            return np.zeros(0, np.float64)
        proba = np.asarray(self._after_impute.predict_proba(arr), dtype=np.float64)
        return np.clip(proba[:, self._positive], 0.0, 1.0)

    def logit_imputed(self, Z: npt.ArrayLike) -> F64:
        """log-odds of the miner probability of imputed vectors (clipped at 1e-6 / 1 - 1e-6)."""
        p = np.clip(self.score_imputed(Z), _EPS, 1.0 - _EPS)
        out: F64 = np.log(p / (1.0 - p))
        return out

    def benign_baseline(self) -> F32 | None:
        """The imputed benign median vector (what deletion replaces features with), None without background."""
        if self.background is None:
            return None
        row: F32 = self.impute(self.background.benign_median.astype(np.float32)[None])[0]
        return row

    def benign_sample(self, size: int, seed: int) -> F32:
        """Up to ``size`` imputed benign rows of the background sample (seeded choice)."""
        bg = self.require_background()
        rows = np.flatnonzero(bg.sample_labels == 0)
        if rows.size == 0:
            rows = np.arange(bg.sample.shape[0])
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(rows, size=min(size, rows.size), replace=False))
        return self.impute(bg.sample[chosen])

    def require_background(self) -> Background:
        if self.background is None:
            msg = (
                f"{self.manifest.model_name}: the artifact has no background.npz (saved without reference windows); "
                "retrain it with `minerlens train` or pass a Background built from the training windows"
            )
            raise ArtifactError(msg)
        return self.background
