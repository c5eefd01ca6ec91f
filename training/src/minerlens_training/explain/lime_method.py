"""LIME explanations of feature models (``lime.lime_tabular.LimeTabularExplainer``).

Plain LIME over all 1123 features fails here: it perturbs every feature at once, most of them are
zero in almost every window (rare syscalls, empty n-gram buckets), and the local linear fit ends up
weighting the absence of syscalls nobody looks at (R² < 0.1 on miner windows in our measurements).
So each explanation runs LIME on up to 2 x ``candidates`` features chosen for *this* window — the
ones furthest from the benign median (in units of the background's spread) and the model's globally
most important ones (``background.npz``), as long as the window's value differs from the benign
median — and keeps every other feature at the window's own value. The perturbations
are drawn from the background sample (quartile discretisation, LIME's default), the surrogate is fitted
to the log-odds of the miner probability (regression mode: a probability saturated at 0.9999 has no
slope left to explain) and the sampler is seeded per explanation, so the same window always gets the
same explanation. A positive weight means "being in this window's bin of the feature raises the
miner log-odds": toward miner.
"""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt
from minerlens_core.schemas.explanations import Contribution

from minerlens_training.explain.base import F64, WindowExplainer
from minerlens_training.explain.tabular import F32, TabularModel
from minerlens_training.explain.wording import WindowIds


class LimeExplainer(WindowExplainer):
    method = "lime"
    unit = "log-odds (local linear weight)"

    def __init__(self, model: TabularModel, *, candidates: int = 30, num_samples: int = 2000, seed: int = 0) -> None:
        super().__init__(model.manifest, model.ref, model.spec, model.background)
        bg = model.require_background()
        self.model = model
        self.candidates = candidates
        self.num_samples = num_samples
        self.seed = seed
        self._sample: F32 = model.impute(bg.sample)
        self._median = model.benign_baseline()
        spread = np.nan_to_num(self._sample.std(axis=0).astype(np.float64))
        self._spread = np.maximum(spread, 1e-6)
        self._importance_order = np.argsort(-np.nan_to_num(bg.importance), kind="stable")
        self._important = int((np.nan_to_num(bg.importance) > 0).sum())

    def score(self, inputs: npt.ArrayLike) -> F64:
        return self.model.score(inputs)

    def candidate_features(self, z: F32) -> npt.NDArray[np.int64]:
        """Features LIME perturbs for the imputed window ``z`` (sorted indices).

        Only features where the window differs from the benign median: a feature at its benign value
        cannot be why the window scores differently from benign pods ("set_mempolicy is 0% of calls,
        benign pods: 0%" is no reason), however important it is globally.
        """
        assert self._median is not None
        deviation = np.abs(z.astype(np.float64) - self._median) / self._spread
        far = np.argsort(-deviation, kind="stable")[: self.candidates]
        important = self._importance_order[: min(self.candidates, self._important)]
        chosen = np.unique(np.concatenate([far, important]).astype(np.int64))
        kept: npt.NDArray[np.int64] = chosen[deviation[chosen] > 0]
        return kept

    def weights(self, x: npt.ArrayLike, top: int) -> tuple[F64, float, float]:
        """LIME weights over all features (0 outside the top ``top`` candidates), intercept and R²."""
        from lime.lime_tabular import LimeTabularExplainer  # heavy: only when LIME is asked for

        z = self.model.impute(x)[0]
        cand = self.candidate_features(z)
        out = np.zeros(len(self.spec.names), dtype=np.float64)
        if cand.size == 0:
            return out, float(self.model.logit_imputed(z[None])[0]), 1.0

        def predict(samples: npt.NDArray[np.float64]) -> F64:
            full = np.repeat(z[None], samples.shape[0], axis=0)
            full[:, cand] = samples
            return self.model.logit_imputed(full)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LIME warns about constant background columns
            lime = LimeTabularExplainer(
                self._sample[:, cand],
                mode="regression",
                feature_names=[self.spec.names[j] for j in cand],
                discretize_continuous=True,
                feature_selection="highest_weights",
                random_state=self.seed,
            )
            exp = lime.explain_instance(
                z[cand], predict, num_features=min(top, cand.size), num_samples=self.num_samples
            )
        for k, w in exp.local_exp[1]:
            out[cand[int(k)]] = float(w)
        return out, float(exp.intercept[1]), float(exp.score)

    def _explain(
        self, x: npt.NDArray[np.generic], top: int, context: WindowIds | None
    ) -> tuple[float, float | None, list[Contribution], dict[str, str | int | float | bool]]:
        row = np.asarray(x, dtype=np.float32).reshape(1, -1)
        w, intercept, r2 = self.weights(row, top)
        params: dict[str, str | int | float | bool] = {
            "explainer": "LimeTabularExplainer",
            "candidates": self.candidates,
            "num_samples": self.num_samples,
            "seed": self.seed,
            "r2": round(r2, 4),
        }
        return float(self.model.score(row)[0]), intercept, self.ranked(row[0], w, top, context), params

    def method_note(self) -> str:
        return f"LIME on {self.candidates}+ candidate features, weights in log-odds"
