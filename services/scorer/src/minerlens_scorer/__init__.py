"""minerlens scorer: ONNX Runtime verdicts per feature window and OCSF Detection Finding alerts per pod.

* ``scoring.Scorer``: the data plane (windows -> verdicts), no Kafka;
* ``alerting.AlertEngine`` + ``findings.FindingFactory``: the per-pod alert policy -> OCSF findings;
* ``model_repository.ModelRepository``: verified artifacts from the models directory, hot reload;
* ``service.ScorerService``: the Kafka adapter (windows topic in; verdicts, alerts, dead letters out).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("minerlens-scorer")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0.0.0"
