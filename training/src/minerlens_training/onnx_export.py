"""Export a fitted detector's whole pipeline (imputer, scaler, model) to ONNX.

skl2onnx converts the sklearn steps; XGBoost's classifier is converted by onnxmltools through a
converter registered with skl2onnx. ``zipmap`` is off so the output ``probabilities`` is a plain
``(n, 2)`` float tensor; column ``POSITIVE_COLUMN`` is the miner probability (classes are [0, 1]).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import onnx
from minerlens_core.models import INPUT_NAME, PROBABILITIES
from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
from skl2onnx import convert_sklearn, update_registered_converter
from skl2onnx.common.data_types import FloatTensorType
from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
from xgboost import XGBClassifier

from minerlens_training.detectors.base import Detector

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


@cache
def _register_xgboost() -> None:
    update_registered_converter(
        XGBClassifier,
        "XGBoostXGBClassifier",
        calculate_linear_classifier_output_shapes,
        convert_xgboost,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )


def to_onnx(detector: Detector) -> onnx.ModelProto:
    """The detector's fitted pipeline as an ONNX model: input ``features`` (float32, n x d), output
    ``probabilities`` (float32, n x 2)."""
    _register_xgboost()
    pipe = detector.pipeline
    model = pipe.named_steps["model"]
    options: dict[Any, Any] = {id(model): {"zipmap": False}}
    onx = convert_sklearn(
        pipe,
        name=f"minerlens-{detector.name}",
        initial_types=[(INPUT_NAME, FloatTensorType([None, detector.n_features]))],
        options=options,
        target_opset=TARGET_OPSET,
        final_types=None,
    )
    outputs = [o.name for o in onx.graph.output]
    if PROBABILITIES not in outputs:
        msg = f"ONNX export of {detector.name} has outputs {outputs}, expected {PROBABILITIES!r}"
        raise RuntimeError(msg)
    if not isinstance(onx, onnx.ModelProto):
        msg = f"skl2onnx returned a {type(onx).__name__}, not an ONNX model"
        raise TypeError(msg)
    return onx
