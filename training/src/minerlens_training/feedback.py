"""Operator judgements as training rows: ``minerlens train --feedback FILE`` reads what
``minerlens explainer feedback-export`` wrote (one JSON line per judged window: ``label`` 1 confirmed miner /
0 false positive, ``feedback_id``, the whole ``window`` as a ``FeatureWindow``).

The store keeps feature windows, not raw syscalls, so a judged window can only train a model with the
same feature spec: a line whose ``feature_digest`` differs from the spec being trained is counted and left
out (its model was trained on other features). A file that is not such lines is refused whole, naming the
line: these are training labels, and a label that cannot be read must not turn into a silent gap. The
windows of one judgement form one calibration group (they are one alert's windows).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from minerlens_core.features import FeatureSpec
from minerlens_core.features.gates import gated_mask
from minerlens_core.schemas.windows import FeatureWindow
from pydantic import ValidationError

from minerlens_training.context import with_quiet_twins

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]
MAX_LINE_BYTES = 1 << 20


class FeedbackError(ValueError):
    """A feedback file that cannot be used (what and where)."""


@dataclass(frozen=True)
class FeedbackRows:
    X: F32
    y: I64
    group: I64
    """one id per judgement (``feedback_id``), 0-based"""
    other_spec: int
    """lines left out: windows of another feature spec"""
    sha256: str
    """of the files' bytes, in the order given"""

    @property
    def summary(self) -> str:
        left = f"; {self.other_spec} of another feature spec left out" if self.other_spec else ""
        judgements = int(self.group.max()) + 1 if self.group.size else 0
        return f"{len(self.y)} judged windows ({int(self.y.sum())} miner) from {judgements} judgements{left}"

    @property
    def provenance(self) -> str:
        """what the model manifest's training source adds"""
        return f" + {len(self.y)} operator-judged windows (feedback sha256 {self.sha256[:16]})"


def read_feedback(paths: Sequence[Path], spec: FeatureSpec) -> FeedbackRows:
    rows: list[list[float]] = []
    labels: list[int] = []
    judgements: list[str] = []
    other = 0
    digest = hashlib.sha256()
    for path in paths:
        data = path.read_bytes()
        digest.update(data)
        for n, raw in enumerate(data.splitlines(), 1):
            if not raw.strip():
                continue
            where = f"{path}:{n}"
            if len(raw) > MAX_LINE_BYTES:
                msg = f"{where}: line longer than {MAX_LINE_BYTES} bytes"
                raise FeedbackError(msg)
            try:
                line = json.loads(raw)
                label = line["label"] if isinstance(line, dict) else None
                window = FeatureWindow.model_validate(line["window"])
                fid = str(line.get("feedback_id") or window.window_id)
            except (ValueError, KeyError, TypeError, ValidationError) as exc:
                msg = f"{where}: not a feedback-export line ({type(exc).__name__}: {str(exc)[:200]})"
                raise FeedbackError(msg) from None
            if label not in (0, 1) or isinstance(label, bool):
                msg = f"{where}: label must be 1 (miner) or 0 (false positive), not {label!r}"
                raise FeedbackError(msg)
            if window.feature_digest != spec.digest or len(window.features) != spec.dim:
                other += 1
                continue
            rows.append([np.nan if v is None else v for v in window.features])
            labels.append(int(label))
            judgements.append(fid)
    ids = {fid: k for k, fid in enumerate(dict.fromkeys(judgements))}
    return FeedbackRows(
        X=np.asarray(rows, np.float32).reshape(len(rows), spec.dim),
        y=np.asarray(labels, np.int64),
        group=np.asarray([ids[f] for f in judgements], np.int64),
        other_spec=other,
        sha256=digest.hexdigest(),
    )


def add_feedback(
    paths: Sequence[Path],
    spec: FeatureSpec,
    X: F32,
    y: I64,
    groups: I64,
    eligible: Bool | None,
    *,
    gate: str,
    quiet: bool,
) -> tuple[F32, I64, I64, Bool | None, FeedbackRows]:
    """Training rows (``X``, ``y``, calibration ``groups``, ``eligible``) followed by the judged windows in
    ``paths``, treated like lab windows: those the decision ``gate`` closes left out (they never alert), quiet
    twins added with ``quiet``; each judgement a calibration group of its own. FeedbackError when no judged
    window has ``spec``."""
    fb = read_feedback(paths, spec)
    if not len(fb.y):
        msg = (
            f"no judged window in {', '.join(map(str, paths))} has this model's feature spec "
            f"({fb.other_spec} of another spec): nothing to train on"
        )
        raise FeedbackError(msg)
    keep = ~gated_mask(gate, spec.names, fb.X)
    Xf, yf = fb.X[keep], fb.y[keep]
    gf = fb.group[keep] + (int(groups.max()) + 1 if groups.size else 0)
    ef = np.ones(len(yf), np.bool_) if eligible is not None else None
    if quiet:
        Xf, yf, gf, ef = with_quiet_twins(spec.names, Xf, yf, gf, ef)
    e_out = None if eligible is None or ef is None else np.concatenate([eligible, ef])
    X_out = np.concatenate([X, Xf]).astype(np.float32, copy=False)
    return X_out, np.concatenate([y, yf]), np.concatenate([groups, gf]), e_out, fb
