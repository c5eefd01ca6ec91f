"""minerlens explainer: "why was this pod flagged?" over REST (SHAP, LIME, LSTM-AE), cached in Redis."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("minerlens-explainer")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"
