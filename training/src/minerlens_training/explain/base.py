"""The explainer interface and what every method shares: contributions in operator terms and the summary.

A ``WindowExplainer`` is built once per (artifact, method) by ``load_explainer`` — the expensive state
(verified artifact, native model, SHAP/LIME machinery, ONNX session) lives in it — and then explains
windows one at a time with ``explain``. It is not thread-safe: a service uses one per worker (or a lock).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from minerlens_core.features import FeatureSpec
from minerlens_core.features.describe import SUMMARY_BENIGN
from minerlens_core.models import ArtifactManifest, Background
from minerlens_core.schemas.explanations import Contribution, Direction, Explanation, Method
from minerlens_core.schemas.windows import ModelRef

from minerlens_training.explain.wording import FeatureWording, WindowDescriber, WindowIds

F64 = npt.NDArray[np.float64]
SUMMARY_ITEMS = 3
"""contributions per direction named in the summary paragraph"""


def direction_of(contribution: float) -> Direction:
    return "toward_miner" if contribution > 0 else "toward_benign"


def finite(v: float | np.floating | None) -> float | None:
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) or math.isinf(f) else f


class WindowExplainer(ABC):
    """Explains why one window of one model got its score.

    ``explain(x)`` takes the model's input for one window: the raw feature vector ``(dim,)`` float32
    (NaN allowed, as ``vectorize`` gives it) for feature models, the syscall-id sequence for sequence
    models (``window_sequence``; padded here). ``ids`` (optional) are the window's syscall ids
    (``Window.ids``, or ``FeatureWindow.sequence`` — then full-sequence pair buckets are named from the
    non-cheap sequence, approximately): with them the texts name the syscall pairs behind n-gram buckets.
    """

    method: ClassVar[Method]
    unit: str
    """unit of ``Contribution.contribution`` (log-odds, probability, share of reconstruction error)"""

    def __init__(
        self, manifest: ArtifactManifest, ref: ModelRef, spec: FeatureSpec, background: Background | None
    ) -> None:
        self.manifest = manifest
        self.ref = ref
        self.spec = spec
        self.background = background
        self.threshold = float(manifest.threshold)
        self.wording = FeatureWording(spec)
        self._index = {n: i for i, n in enumerate(spec.names)}
        benign: dict[str, tuple[float, float]] = {}
        if background is not None and tuple(background.feature_names) == tuple(spec.names):
            for name in SUMMARY_BENIGN:
                j = self._index.get(name)
                lo, hi = (
                    (None, None) if j is None else (finite(background.benign_p05[j]), finite(background.benign_p95[j]))
                )
                if lo is not None and hi is not None:
                    benign[name] = (lo, hi)
        self.describer = WindowDescriber(spec.names, spec, benign)

    @property
    def input_kind(self) -> str:
        return self.manifest.input_kind

    @abstractmethod
    def score(self, inputs: npt.ArrayLike) -> F64:
        """Model scores in [0, 1] of a batch of inputs (``(n, dim)`` vectors or ``(n, L)`` id sequences)."""

    @abstractmethod
    def _explain(
        self, x: npt.NDArray[np.generic], top: int, context: WindowIds | None
    ) -> tuple[float, float | None, list[Contribution], dict[str, str | int | float | bool]]:
        """(score, base value, ranked contributions, method parameters) of one input."""

    def explain(
        self, x: npt.ArrayLike, *, window_id: str = "", top: int = 10, ids: npt.ArrayLike | None = None
    ) -> Explanation:
        if top < 1:
            msg = f"top must be >= 1, got {top}"
            raise ValueError(msg)
        started = time.perf_counter()
        arr = np.asarray(x)
        vector = arr if self.input_kind == "features" and arr.size == self.spec.dim else None
        context = WindowIds(ids, self.spec, vector=vector) if ids is not None or vector is not None else None
        score, base, contributions, params = self._explain(arr, top, context)
        score = float(np.clip(score, 0.0, 1.0))
        miner = score > self.threshold
        behaviour = self.describer.summary(vector, ids=ids) if vector is not None else ""
        return Explanation(
            method=self.method,
            model=self.ref,
            window_id=window_id,
            score=score,
            threshold=self.threshold,
            miner=miner,
            base_value=finite(base),
            contributions=contributions,
            summary=self.summary(window_id, score, miner, contributions, params, behaviour=behaviour),
            params={"unit": self.unit, **params},
            cost_ms=(time.perf_counter() - started) * 1000.0,
        )

    # ---- shared by the methods ---------------------------------------------------------------------

    def feature_index(self, name: str) -> int | None:
        return self._index.get(name)

    def benign(self, j: int) -> tuple[float | None, float | None, float | None]:
        """(p05, median, p95) of feature ``j`` over benign training windows, None without a background."""
        bg = self.background
        if bg is None:
            return None, None, None
        return finite(bg.benign_p05[j]), finite(bg.benign_median[j]), finite(bg.benign_p95[j])

    def feature_contribution(
        self, j: int, value: float | None, contribution: float, context: WindowIds | None, text: str | None = None
    ) -> Contribution:
        name = self.spec.names[j]
        p05, median, p95 = self.benign(j)
        v = finite(value)
        return Contribution(
            feature=name,
            label=self.wording.label(name, context),
            value=v,
            baseline=median,
            contribution=float(contribution),
            direction=direction_of(contribution),
            text=text if text is not None else self.wording.sentence(name, v, p05, median, p95, context),
        )

    def ranked(
        self, values: npt.ArrayLike, attributions: F64, top: int, context: WindowIds | None
    ) -> list[Contribution]:
        """The ``top`` features by |attribution| (ties by name), zero attributions left out."""
        a = np.nan_to_num(np.asarray(attributions, dtype=np.float64))
        x = np.asarray(values, dtype=np.float64).ravel()
        names = np.asarray(self.spec.names)
        order = np.lexsort((names, -np.abs(a)))
        chosen = [int(j) for j in order[:top] if a[j] != 0.0]
        return [self.feature_contribution(j, x[j], a[j], context) for j in chosen]

    def describe_model(self) -> str:
        m = self.manifest
        return f"{m.model_name} {m.version}"

    def method_note(self) -> str:
        return f"{self.method.upper()} contributions in {self.unit}"

    def extra_sentence(self, params: dict[str, str | int | float | bool]) -> str:
        """A method-specific sentence for the summary (before the method note); none by default."""
        del params
        return ""

    def summary(
        self,
        window_id: str,
        score: float,
        miner: bool,
        contributions: Sequence[Contribution],
        params: dict[str, str | int | float | bool] | None = None,
        *,
        behaviour: str = "",
    ) -> str:
        """One paragraph: score and decision, the window's behaviour (feature models), what pushed toward
        miner, what toward benign, the method."""
        m = self.manifest
        what = f"window {window_id}" if window_id else "this window"
        noun = "anomaly score" if m.kind_of_score == "anomaly score" else "miner score"
        decision = "miner" if miner else "not a miner"
        if m.kind_of_score == "anomaly score":
            decision = "anomalous" if miner else "normal"
        parts = [
            f"{self.describe_model()} gave {what} {'an' if noun[0] in 'aeiou' else 'a'} {noun} of {score:.3f} "
            f"({decision}: the threshold is "
            f"{self.threshold:.3f}, tuned for {m.threshold_fpr:.1%} false positives on benign windows)."
        ]
        if behaviour:
            parts.append(f"Behaviour: {behaviour}")
        for direction, words in (("toward_miner", "Toward miner"), ("toward_benign", "Toward benign")):
            items = [c.text or c.feature for c in contributions if c.direction == direction][:SUMMARY_ITEMS]
            if items:
                parts.append(f"{words}: {'; '.join(items)}.")
        if not contributions:
            parts.append("No feature moved the score away from the model's base value.")
        extra = self.extra_sentence(params or {})
        if extra:
            parts.append(extra)
        if self.background is None:
            bench = "the artifact has no background.npz, so values are not compared with benign pods"
        else:
            bench = "benign figures are percentiles of the benign training windows"
        parts.append(f"({self.method_note()}; {bench}.)")
        return " ".join(parts)
