"""Feature names in operator terms, for the explanations: the feature library's wording, re-exported.

The wording lives in ``minerlens_core.features.describe`` (one place for the scorer's inline reasons and
the explanations, so a feature reads the same in an alert and in its explanation): a label and a
value-vs-benign sentence for every group of ``FeatureSpec.names`` (see docs/features.md and
docs/explanations.md), n-gram buckets named by the window's own pairs/triples (``WindowIds``), and the
window's behaviour in one sentence (``WindowDescriber``).
"""

from __future__ import annotations

from minerlens_core.features.describe import (
    FeatureWording,
    WindowDescriber,
    WindowIds,
    Wording,
    share,
)

__all__ = ["FeatureWording", "WindowDescriber", "WindowIds", "Wording", "share"]
