"""The binary layout shared with ``services/collector/bpf/minerlens.h`` (numpy dtypes of keys, values and
ring records). Change both together; ``ABI_VERSION`` is checked against the object's ``abi_version``."""

from __future__ import annotations

import numpy as np

ABI_VERSION = 1
MAX_NR = 1024
NR_OTHER = 1023
NR_NONE = 0xFFFF

LOSS_REASONS = ("counts_map_full", "ngram2_map_full", "ngram3_map_full", "thread_storage_full", "sample_ring_full")
SEEN_EVENTS, SEEN_SAMPLED = 0, 1
SEEN_N = 2

PROGRAM = "minerlens_sys_enter"
MAP_CONFIG, MAP_CGROUPS, MAP_CHEAP = "ml_config", "ml_cgroups", "ml_cheap"
MAP_COUNTS, MAP_NGRAM2, MAP_NGRAM3 = "ml_counts", "ml_ngram2", "ml_ngram3"
MAP_SAMPLES, MAP_LOSS, MAP_SEEN = "ml_samples", "ml_loss", "ml_seen"

CONFIG = np.dtype([("epoch", "<u4"), ("sample_budget", "<u4")])
CGROUP_STATE = np.dtype([("sampled", "<u8"), ("lost", "<u8"), ("epoch", "<u4"), ("pad", "<u4")])
COUNT_KEY = np.dtype(
    {
        "names": ["cgid", "tgid", "tid", "nr", "gen"],
        "formats": ["<u8", "<u4", "<u4", "<u2", "u1"],
        "offsets": [0, 8, 12, 16, 18],
        "itemsize": 24,
    }
)
NGRAM_KEY = np.dtype(
    {
        "names": ["cgid", "tgid", "a", "b", "c", "gen", "nc"],
        "formats": ["<u8", "<u4", "<u2", "<u2", "<u2", "u1", "u1"],
        "offsets": [0, 8, 12, 14, 16, 18, 19],
        "itemsize": 24,
    }
)
SAMPLE = np.dtype([("ts_ns", "<u8"), ("cgid", "<u8"), ("tgid", "<u4"), ("tid", "<u4"), ("nr", "<u4"), ("gen", "<u4")])
COUNT = np.dtype("<u8")

assert CONFIG.itemsize == 8
assert CGROUP_STATE.itemsize == 24
assert SAMPLE.itemsize == 32
