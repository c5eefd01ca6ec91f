"""``load_explainer``: the one entry point the CLI and the explainer service use."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

from minerlens_core.errors import ArtifactError
from minerlens_core.models import Background, VerifiedManifest
from minerlens_core.schemas.explanations import Method

from minerlens_training.explain.base import WindowExplainer

METHODS: tuple[str, ...] = get_args(Method)


def load_explainer(
    artifact_dir: Path, method: Method | str, *, background: Background | None = None, **params: Any
) -> WindowExplainer:
    """Verify the artifact and build the explainer of ``method`` for it (all expensive state, once).

    * ``shap``: feature models. Tree models: ``TreeExplainer``; others: ``PermutationExplainer``
      (params ``background_size=20``, ``permutations=3``, ``seed=0``).
    * ``lime``: feature models (params ``candidates=30``, ``num_samples=2000``, ``seed=0``).
    * ``lstm-ae``: sequence autoencoders whose ONNX graph has ``position_error`` (param ``threads=1``).

    ``background`` replaces the artifact's ``background.npz`` (artifacts saved without reference windows
    have none: SHAP on trees still works, LIME and SHAP on the MLP need one). Raises ``ArtifactError``
    (unverifiable artifact, method not applicable) or ``ValueError`` (unknown method or parameter).
    """
    directory = Path(artifact_dir)
    if method not in METHODS:
        msg = f"unknown explanation method {method!r}; known: {', '.join(METHODS)}"
        raise ValueError(msg)
    try:
        if method == "lstm-ae":
            from minerlens_training.explain.autoencoder import LstmAeExplainer

            return LstmAeExplainer(directory, background=background, **params)
        kind = VerifiedManifest(directory).manifest.input_kind
        if kind != "features":
            msg = f"{directory}: {method} explains feature models; this model takes {kind} input (use lstm-ae)"
            raise ArtifactError(msg)
        from minerlens_training.explain.tabular import TabularModel

        model = TabularModel.load(directory, background)
        if method == "shap":
            from minerlens_training.explain.shap_method import ShapExplainer

            return ShapExplainer(model, **params)
        from minerlens_training.explain.lime_method import LimeExplainer

        return LimeExplainer(model, **params)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        msg = f"{method}: {exc}"
        raise ValueError(msg) from None
