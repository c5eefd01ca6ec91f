"""torch.onnx export of a fitted sequence detector (TorchScript exporter, opset 17, dynamic batch axis).

The serving contract (``OnnxModel`` and the LSTM-AE explanation read these names):

* input ``sequence``: int64 ``(n, L)``, ``L = detector.length``;
* ``lstm``: output ``probabilities`` float32 ``(n, 2)``, column 1 = miner;
* ``lstm-ae``: outputs ``score`` float32 ``(n,)`` in [0, 1) and ``position_error`` float32 ``(n, L)``
  (per-position reconstruction error, 0 at PAD positions).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import onnx
from minerlens_core.models import SEQUENCE_INPUT

from minerlens_training.detectors.sequence import PAD, SequenceDetector

OPSET = 17


def to_onnx(detector: SequenceDetector) -> onnx.ModelProto:
    import torch

    net = detector.net
    dummy = torch.full((2, detector.length), PAD, dtype=torch.int64)
    dummy[:, -1] = 0
    outputs = list(detector.onnx_outputs)
    axes = {SEQUENCE_INPUT: {0: "n"}, **{o: {0: "n"} for o in outputs}}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of dynamo (needs onnxscript), and warns that an
        # LSTM exported with batch != 1 may break for other batch sizes: the parity test covers several
        warnings.simplefilter("ignore")
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            net,
            (dummy,),
            path,
            input_names=[SEQUENCE_INPUT],
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
        model = onnx.load(path)
    model.graph.name = f"minerlens-{detector.name}"
    got = [o.name for o in model.graph.output]
    if got != outputs:
        msg = f"ONNX export of {detector.name} has outputs {got}, expected {outputs}"
        raise RuntimeError(msg)
    return model
