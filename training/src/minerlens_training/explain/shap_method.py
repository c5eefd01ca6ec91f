"""SHAP explanations of feature models.

* Tree models (decision tree, XGBoost): ``shap.TreeExplainer`` on the native model of the verified
  artifact, exact TreeSHAP (``tree_path_dependent``, no background needed). XGBoost attributions are in
  log-odds (they sum with the base value to the model's margin), decision-tree ones in probability.
* Other models (the MLP): ``shap.PermutationExplainer`` (antithetic permutations) on the log-odds of the
  miner probability, with ``background_size`` *benign* rows of ``background.npz`` as the masker's
  background: attributions say why this window scores differently from benign windows. Only features
  where the window differs from some background row are permuted (SHAP's invariant skipping), which
  keeps the cost at ``permutations * (2 * varying + 1)`` model calls of ``background_size`` rows each.
  The permutations are drawn from numpy's global RNG (SHAP's design), seeded with ``seed`` for every
  explanation and restored afterwards, so the same window always gets the same explanation. SHAP's
  masking code is compiled by numba on first use (~10 s on the dev VM): the constructor runs one tiny
  explanation so that cost lands in ``load_explainer``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
from minerlens_core.schemas.explanations import Contribution

from minerlens_training.explain.base import F64, WindowExplainer
from minerlens_training.explain.tabular import TabularModel
from minerlens_training.explain.wording import WindowIds


class ShapExplainer(WindowExplainer):
    method = "shap"

    def __init__(self, model: TabularModel, *, background_size: int = 20, permutations: int = 3, seed: int = 0) -> None:
        with warnings.catch_warnings():  # shap's import warns about matplotlib colormap API changes
            warnings.simplefilter("ignore")
            import shap  # heavy: only when SHAP is asked for

        super().__init__(model.manifest, model.ref, model.spec, model.background)
        self.model = model
        self.seed = seed
        self.permutations = permutations
        self._tree: Any = None
        self._perm: Any = None
        if model.is_tree:
            self._tree = shap.TreeExplainer(model.model)
            self.unit = "log-odds" if model.is_xgboost else "probability"
            self._params: dict[str, str | int | float | bool] = {
                "explainer": "TreeExplainer",
                "feature_perturbation": "tree_path_dependent",
            }
        else:
            self._background = model.benign_sample(background_size, seed)
            masker = shap.maskers.Independent(self._background, max_samples=len(self._background))
            self._perm = shap.PermutationExplainer(model.logit_imputed, masker, seed=seed)
            self.unit = "log-odds"
            self._params = {
                "explainer": "PermutationExplainer",
                "background": f"{len(self._background)} benign windows",
                "permutations": permutations,
                "seed": seed,
            }
            self._warm_up()

    def _warm_up(self) -> None:
        """SHAP's masker is numba code compiled on first use (seconds): pay it here, not in the first request."""
        z = self._background[:1]
        varying = int((~(self._background == z).all(axis=0)).sum())
        state = np.random.get_state()
        try:
            self._perm(z, max_evals=2 * max(varying, 1) + 1, silent=True)
        finally:
            np.random.set_state(state)

    def score(self, inputs: npt.ArrayLike) -> F64:
        return self.model.score(inputs)

    def attributions(self, x: npt.ArrayLike) -> tuple[F64, float]:
        """SHAP values of one raw vector over all features, and the base value."""
        if self._tree is not None:
            z = self.model.before_model(x)
            values = np.asarray(self._tree.shap_values(z), dtype=np.float64)
            base = np.asarray(self._tree.expected_value, dtype=np.float64).ravel()
            if values.ndim == 3:  # (1, dim, classes): sklearn trees explain every class
                pos = list(self.model.pipeline.classes_).index(1)
                return values[0, :, pos], float(base[pos] if base.size > 1 else base[0])
            return values[0], float(base[-1])
        z = self.model.impute(x)
        varying = int((~(self._background == z).all(axis=0)).sum())
        max_evals = max(1, self.permutations) * (2 * max(varying, 1) + 1)
        state = np.random.get_state()
        np.random.seed(self.seed)
        try:
            out = self._perm(z, max_evals=max_evals, silent=True)
        finally:
            np.random.set_state(state)
        return np.asarray(out.values, dtype=np.float64)[0], float(np.ravel(out.base_values)[0])

    def _explain(
        self, x: npt.NDArray[np.generic], top: int, context: WindowIds | None
    ) -> tuple[float, float | None, list[Contribution], dict[str, str | int | float | bool]]:
        row = np.asarray(x, dtype=np.float32).reshape(1, -1)
        values, base = self.attributions(row)
        score = float(self.model.score(row)[0])
        return score, base, self.ranked(row[0], values, top, context), dict(self._params)

    def method_note(self) -> str:
        return f"SHAP {self._params['explainer']}, contributions in {self.unit}"
