"""minerlens training: detectors on ``minerlens_core.features`` vectors, ONNX artifacts, honest evaluation.

* ``datasets``: a lab dataset directory -> windows -> ``X`` (float32), ``y`` (1 = miner) and run groups.
* ``detectors``: one interface (``fit`` / ``infer_threshold`` / ``score`` / ``predict``) over a decision
  tree, gradient-boosted trees (XGBoost) and an MLP; NaNs are imputed inside each model's pipeline.
* ``artifacts``: save/load a verified model directory (``model.onnx``, the native model, ``manifest.json``)
  and ``OnnxModel``, the ONNX Runtime scorer.
* ``splits`` / ``metrics`` / ``evaluate`` / ``report``: leave-one-family-out, group-by-run and the leaky
  random-window split, window- and trace-level metrics, Markdown + JSON reports.
"""

__version__ = "0.1.0"
