"""The one feature library, shared by training (trace files) and the streaming featurizer (batches).

Pure numpy/pyarrow/pydantic: never imports ML or streaming frameworks.

* ``vocabulary``: syscall names -> fixed, versioned indices (x86_64 and arm64 share them).
* ``windows``: per-(pod, container) windows, offline (``windows_from_trace``) or incremental
  (``WindowBuilder``), identical for any chunking.
* ``vectorize``: the feature vector of a window, laid out as ``FeatureSpec.names``.
* ``ngrams``: stable n-gram hashing and the paper's raw ``frames`` (for sequence models).
* ``spec``: ``WindowPolicy``, ``FeatureParams`` and ``FeatureSpec`` (with the digest models store).
"""

from minerlens_core.features.describe import (
    FeatureWording,
    WindowDescriber,
    WindowIds,
    behaviour_summary,
)
from minerlens_core.features.ngrams import frames, ngram_buckets
from minerlens_core.features.sequences import window_sequence
from minerlens_core.features.spec import (
    DEFAULT_CHEAP,
    FEATURE_VERSION,
    FeatureParams,
    FeatureSpec,
    WindowPolicy,
    feature_groups,
)
from minerlens_core.features.vectorize import cheap_mask, vectorize, vectorize_many
from minerlens_core.features.vocabulary import (
    OTHER,
    OTHER_ID,
    VOCAB_SIZE,
    VOCAB_VERSION,
    VOCABULARY,
    ids_from_names,
    ids_from_nr,
    ids_of,
    index_of,
)
from minerlens_core.features.windows import (
    StreamChunk,
    StreamKey,
    Window,
    WindowBuilder,
    chunk_from_batch,
    chunks_from_table,
    windows_from_trace,
)

__all__ = [
    "DEFAULT_CHEAP",
    "FEATURE_VERSION",
    "OTHER",
    "OTHER_ID",
    "VOCABULARY",
    "VOCAB_SIZE",
    "VOCAB_VERSION",
    "FeatureParams",
    "FeatureSpec",
    "FeatureWording",
    "StreamChunk",
    "StreamKey",
    "Window",
    "WindowBuilder",
    "WindowDescriber",
    "WindowIds",
    "WindowPolicy",
    "behaviour_summary",
    "cheap_mask",
    "chunk_from_batch",
    "chunks_from_table",
    "feature_groups",
    "frames",
    "ids_from_names",
    "ids_from_nr",
    "ids_of",
    "index_of",
    "ngram_buckets",
    "vectorize",
    "vectorize_many",
    "window_sequence",
    "windows_from_trace",
]
