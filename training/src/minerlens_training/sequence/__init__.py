"""Sequence models over window syscall-id sequences: an LSTM classifier and an LSTM autoencoder.

* ``LSTMDetector`` (``lstm``) and ``LSTMAutoencoderDetector`` (``lstm-ae``), defined in
  ``detectors.sequence`` next to the feature models, same interface (``BaseDetector``), input
  ``Dataset.sequences``;
* ``nets``: the torch modules; ``onnx_export``: torch.onnx export with the serving contract's names;
* ``artifacts``: verified artifact directories (``model.onnx``, ``model.pt``, config, manifest).

Importing this package does not import torch; fitting, scoring, export and loading do.
"""

from minerlens_training.detectors.sequence import (
    DEFAULT_LENGTH,
    PAD,
    LSTMAutoencoderDetector,
    LSTMDetector,
    SequenceDetector,
    as_sequences,
)

__all__ = [
    "DEFAULT_LENGTH",
    "PAD",
    "LSTMAutoencoderDetector",
    "LSTMDetector",
    "SequenceDetector",
    "as_sequences",
]
