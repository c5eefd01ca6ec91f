"""The syscall-id sequence of a window that sequence models (LSTM, LSTM autoencoder) read.

Cheap syscalls (``FeatureParams.cheap``: getpid, nanosleep, ...) are dropped first, so padding a
stream with junk calls does not push the real calls out of the sequence; the tail (most recent
calls) is kept. Streaming (featurizer) and training both call this function.
"""

from __future__ import annotations

import numpy as np

from minerlens_core.features.spec import FeatureParams
from minerlens_core.features.vectorize import cheap_mask
from minerlens_core.features.vocabulary import IdArray
from minerlens_core.features.windows import Window
from minerlens_core.schemas.windows import MAX_SEQUENCE


def window_sequence(window: Window, params: FeatureParams | None = None, length: int = MAX_SEQUENCE) -> IdArray:
    """The last ``length`` non-cheap syscall ids of ``window`` (int16 vocabulary ids, oldest first)."""
    ids = np.asarray(window.ids, dtype=np.int16)
    kept = ids[~cheap_mask(params or FeatureParams())[ids]]
    return kept[-length:] if length > 0 else kept[:0]
