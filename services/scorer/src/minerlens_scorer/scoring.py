"""The data plane: feature windows in, one ``Verdict`` (or a rejection for the dead-letter topic) per window out.

No Kafka here. A batch is scored with one ONNX Runtime call per model. The primary model decides
(``score > threshold`` -> ``miner``); every other model whose feature spec matches the window is reported in
``Verdict.scores``. Windows laid out for another feature spec are rejected (``feature spec mismatch``)
rather than scored wrongly; windows with fewer than ``min_syscalls`` syscalls get ``insufficient_data``
unless they carry the pod's resource use (``res.has``: a pod that burns CPU without syscalls is judged on it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from minerlens_core.features.gates import OFFLINE_DETAIL, gated_mask
from minerlens_core.models.onnx_model import pad_sequences
from minerlens_core.schemas.envelope import utcnow
from minerlens_core.schemas.windows import FeatureWindow, ModelScore, Reason, Verdict

from minerlens_scorer.model_set import LoadedModel, ModelSet

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]

SPEC_MISMATCH = "feature spec mismatch"
VECTOR_LENGTH = "feature vector length"
SCORING_FAILED = "scoring failed"


def _from_window(w: FeatureWindow, primary: LoadedModel, now: datetime) -> dict[str, Any]:
    """The fields every verdict takes from its window and from the deciding model."""
    return {
        "envelope": w.envelope.model_copy(update={"observed_at": now}),
        "window_id": w.window_id,
        "policy": w.policy,
        "index": w.index,
        "scope": w.scope,
        "process": w.process,
        "start_ns": w.start_ns,
        "end_ns": w.end_ns,
        "count": w.count,
        "lost_events": w.lost_events,
        "threshold": primary.model.threshold,
        "model": primary.model.ref,
    }


@dataclass(frozen=True)
class Rejected:
    """A window the scorer refuses to score: it goes to the dead-letter topic with ``reason``."""

    window: FeatureWindow
    reason: str
    detail: str


Outcome = Verdict | Rejected


class _Inputs:
    """Model inputs of one batch, built once and shared by every model that needs them."""

    def __init__(self, windows: Sequence[FeatureWindow]) -> None:
        self.windows = windows
        self._features: npt.NDArray[np.float32] | None = None
        self._sequences: dict[int, npt.NDArray[np.int64]] = {}

    def features(self) -> npt.NDArray[np.float32]:
        if self._features is None:
            # None -> NaN: the artifact's pipeline imputes unknown values like in training
            self._features = np.array([w.features for w in self.windows], dtype=np.float32)
        return self._features

    def of(self, model: LoadedModel, rows: list[int] | None = None) -> npt.NDArray[np.float32] | npt.NDArray[np.int64]:
        m = model.model
        if m.input_kind == "sequence":
            length = m.manifest.sequence_length or 1
            if length not in self._sequences:
                self._sequences[length] = pad_sequences([w.sequence for w in self.windows], length)
            arr: npt.NDArray[np.float32] | npt.NDArray[np.int64] = self._sequences[length]
        else:
            arr = self.features()
        return arr if rows is None else arr[rows]


def _has_resources(w: FeatureWindow, model: LoadedModel) -> bool:
    """The window carries the pod's resource use (CPU time...): judged even with (almost) no syscall."""
    col = model.res_column
    return col is not None and col < len(w.features) and w.features[col] == 1.0


class Scorer:
    """Score batches of windows with a ``ModelSet``; ``swap`` replaces the models atomically (hot reload)."""

    def __init__(
        self, models: ModelSet, *, min_syscalls: int = 3, clock: Callable[[], datetime] = utcnow
    ) -> None:  # fmt: skip
        self._models = models
        self.min_syscalls = min_syscalls
        self._clock = clock
        self.gated = 0
        """windows over the threshold whose decision the model's gate made benign (``features.gates``)"""

    @property
    def models(self) -> ModelSet:
        return self._models

    def swap(self, models: ModelSet) -> None:
        self._models = models

    def score(self, windows: Sequence[FeatureWindow]) -> list[Outcome]:
        """One outcome per window, in order."""
        ms = self._models  # one consistent set for the whole batch, whatever a reload does meanwhile
        primary = ms.primary
        out: list[Outcome | None] = [None] * len(windows)
        todo: list[int] = []
        for i, w in enumerate(windows):
            if w.feature_digest != primary.digest:
                out[i] = Rejected(
                    w,
                    SPEC_MISMATCH,
                    f"window features are spec v{w.feature_version} digest {w.feature_digest[:16]}, "
                    f"model {primary.name} {primary.version} expects digest {primary.digest[:16]}",
                )
            elif len(w.features) != primary.model.n_features:
                out[i] = Rejected(
                    w, VECTOR_LENGTH, f"{len(w.features)} features, the spec has {primary.model.n_features}"
                )
            elif w.count < self.min_syscalls and not _has_resources(w, primary):
                out[i] = self._insufficient(w, primary)
            else:
                todo.append(i)
        if todo:
            batch = [windows[i] for i in todo]
            for i, outcome in zip(todo, self._score_batch(ms, batch), strict=True):
                out[i] = outcome
        return [o for o in out if o is not None]

    def _insufficient(self, w: FeatureWindow, primary: LoadedModel) -> Verdict:
        return Verdict(
            **_from_window(w, primary, self._clock()),
            decision="insufficient_data",
            detail=f"{w.count} syscalls < min_syscalls {self.min_syscalls}: too few to score",
        )

    @staticmethod
    def _run(model: LoadedModel, inputs: _Inputs, rows: list[int]) -> F64 | None:
        """Scores of one model for ``rows``; per-window fallback isolates a window ONNX Runtime refuses."""
        try:
            return model.model.score(inputs.of(model, rows))
        except Exception:  # noqa: BLE001 - onnxruntime raises its own exception types
            log.warning("%s failed on a batch of %d windows; scoring them one by one", model.name, len(rows))
        scores = np.full(len(rows), np.nan)
        for k, j in enumerate(rows):
            try:
                scores[k] = model.model.score(inputs.of(model, [j]))[0]
            except Exception:  # the window stays NaN: dead-lettered as "scoring failed"
                log.warning("%s failed on window %s", model.name, inputs.windows[j].window_id, exc_info=True)
        return scores

    def _score_batch(self, ms: ModelSet, windows: Sequence[FeatureWindow]) -> list[Outcome]:
        primary = ms.primary
        inputs = _Inputs(windows)
        main = self._run(primary, inputs, list(range(len(windows))))
        extra: list[tuple[LoadedModel, list[int], F64 | None]] = []
        for other in ms.others:
            rows = [j for j, w in enumerate(windows) if w.feature_digest == other.digest]
            if rows:
                extra.append((other, rows, self._run(other, inputs, rows)))
        ok = np.zeros(len(windows), dtype=np.bool_) if main is None else ~np.isnan(main)
        miner = np.zeros(len(windows), dtype=np.bool_)
        gated = np.zeros(len(windows), dtype=np.bool_)
        if main is not None:
            over = ok & (np.nan_to_num(main) > primary.model.threshold)
            if over.any() and primary.gate != "none":
                gated = over & gated_mask(primary.gate, primary.model.manifest.feature_names, inputs.features())
                self.gated += int(gated.sum())
            miner = over & ~gated
        reasons: dict[int, list[Reason]] = {}
        if primary.ranker is not None and miner.any():
            flagged = np.flatnonzero(miner).tolist()
            seqs = [windows[j].sequence for j in flagged]
            procs = [windows[j].process for j in flagged]
            scopes = [windows[j].scope for j in flagged]
            found = primary.ranker.reasons(inputs.features()[flagged], seqs, processes=procs, scopes=scopes)
            reasons = dict(zip(flagged, found, strict=True))
        others: dict[int, list[ModelScore]] = {}
        for model, rows, scores in extra:
            if scores is None:
                continue
            for j, s in zip(rows, scores.tolist(), strict=True):
                if s == s:  # not NaN
                    others.setdefault(j, []).append(self._model_score(model, s))
        now = self._clock()
        out: list[Outcome] = []
        for j, w in enumerate(windows):
            if not ok[j] or main is None:
                out.append(Rejected(w, SCORING_FAILED, f"{primary.name} {primary.version} could not score it"))
                continue
            score = float(main[j])
            details = []
            if w.lost_events:
                details.append(f"{w.lost_events} events were lost while this window was open")
            if gated[j]:
                details.append(OFFLINE_DETAIL)
            if miner[j] and primary.ranker is None:
                details.append(f"no inline reasons: {primary.note} (ask the explainer)")
            out.append(
                Verdict.model_construct(  # every field built here (tests decode it back): no revalidation
                    **_from_window(w, primary, now),
                    decision="miner" if miner[j] else "benign",
                    score=score,
                    scores=[self._model_score(primary, score), *others.get(j, [])],
                    reasons=reasons.get(j, []),
                    detail="; ".join(details),
                )
            )
        return out

    @staticmethod
    def _model_score(model: LoadedModel, score: float) -> ModelScore:
        return ModelScore.model_construct(  # score in [0, 1] by OnnxModel.score: skip validation on the hot path
            model=model.model.ref, score=score, threshold=model.model.threshold, miner=score > model.model.threshold
        )
