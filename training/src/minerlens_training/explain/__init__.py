"""Why a window got its score: SHAP, LIME and LSTM-autoencoder explanations in operator terms.

One API for the ``minerlens explain`` command and the explainer service::

    from minerlens_training.explain import load_explainer, render_png

    explainer = load_explainer(Path("models/default"), "shap")  # verifies the artifact, builds SHAP once
    explanation = explainer.explain(x, window_id=wid, top=10)    # minerlens_core.schemas.explanations.Explanation
    png = render_png(explanation)

``x`` is the raw feature vector of one window (``vectorize``) for feature models, or the window's
syscall-id sequence (``window_sequence``) for ``lstm-ae``. See docs/explanations.md.
"""

from minerlens_training.explain.base import WindowExplainer
from minerlens_training.explain.loader import METHODS, load_explainer
from minerlens_training.explain.plot import render_png

__all__ = ["METHODS", "WindowExplainer", "load_explainer", "render_png"]
