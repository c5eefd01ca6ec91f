"""Request and response bodies of the REST API (they define its OpenAPI schema)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal, Self

from minerlens_core.features import VOCAB_SIZE
from minerlens_core.schemas.explanations import Explanation, Method
from minerlens_core.schemas.windows import MAX_SEQUENCE, FeatureWindow, Verdict
from pydantic import BaseModel, ConfigDict, Field, model_validator

from minerlens_explainer.naming import WINDOW_ID
from minerlens_explainer.store import AlertState

MAX_FEATURES = 16_384


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable code, e.g. not_found, invalid_request, unauthorized")
    message: str = Field(description="what is wrong, in words")
    detail: list[dict[str, object]] | None = Field(default=None, description="per-field problems (422)")


class PodSummary(BaseModel):
    namespace: str
    pod: str
    pod_uid: str
    node: str
    last_seen: datetime
    alerting: bool = Field(description="the pod has an open alert")
    alert: AlertState | None
    latest: Verdict | None = Field(description="the newest verdict")


class PodList(BaseModel):
    pods: list[PodSummary]
    count: int
    truncated: bool = Field(description="more pods exist than max_pods_listed")


class WindowInfo(BaseModel):
    window_id: str
    policy: str
    index: int
    start_ns: int | None
    end_ns: int | None
    count: int
    lost_events: int
    complete: bool


class PodDetail(BaseModel):
    namespace: str
    pod: str
    pod_uid: str
    node: str
    last_seen: datetime
    alerting: bool
    alert: AlertState | None
    verdicts: list[Verdict] = Field(description="verdict history, newest first")
    windows: list[WindowInfo] = Field(description="stored windows (explainable), newest first")


WindowSource = Literal["requested", "alert", "highest_score", "latest", "body"]


class ExplainedWindow(BaseModel):
    window_id: str
    source: WindowSource = Field(
        description="requested (?window=), alert (opened the open alert), highest_score (highest-scoring stored "
        "window), latest (newest stored window, no scored one), body (POST /v1/explain)"
    )
    namespace: str | None = None
    pod: str | None = None
    policy: str | None = None
    index: int | None = None
    start_ns: int | None = None
    end_ns: int | None = None


class ExplanationResponse(BaseModel):
    explanation: Explanation
    window: ExplainedWindow


class ExplainRequest(BaseModel):
    """One window to explain: a whole ``window`` (FeatureWindow), or a bare ``features`` vector / ``sequence``."""

    model_config = ConfigDict(extra="forbid")

    method: Method = "shap"
    model: str | None = Field(default=None, max_length=253, description="model name (GET /v1/models); default: first")
    top: int = Field(default=10, ge=1, le=50, description="contributions to return")
    window: FeatureWindow | None = None
    features: list[float | None] | None = Field(default=None, max_length=MAX_FEATURES)
    sequence: list[int] | None = Field(default=None, max_length=MAX_SEQUENCE)
    window_id: str = Field(default="", max_length=512, pattern=r"^$|" + WINDOW_ID)

    @model_validator(mode="after")
    def _one_window(self) -> Self:
        if self.window is not None and (self.features is not None or self.sequence is not None):
            msg = "give either 'window' or 'features'/'sequence', not both"
            raise ValueError(msg)
        if self.window is None and self.features is None and self.sequence is None:
            msg = "give the window to explain: 'window', 'features' or 'sequence'"
            raise ValueError(msg)
        if self.features is not None and any(v is not None and not math.isfinite(v) for v in self.features):
            msg = "features must be finite numbers or null"
            raise ValueError(msg)
        if self.sequence is not None and any(not 0 <= v <= VOCAB_SIZE for v in self.sequence):
            msg = f"sequence ids must be in 0..{VOCAB_SIZE}"
            raise ValueError(msg)
        return self


class ModelInfo(BaseModel):
    name: str
    version: str
    manifest_sha256: str
    kind: str
    detector: str
    input_kind: str
    kind_of_score: str
    feature_version: str
    feature_digest: str
    n_features: int
    sequence_length: int | None
    threshold: float
    threshold_fpr: float
    methods: list[Method]
    created_at: datetime
    default_for: list[Method] = Field(description="methods for which this model is the default")


class ModelList(BaseModel):
    models: list[ModelInfo]
    errors: list[str] = Field(description="artifacts that could not be loaded, and why")


class Health(BaseModel):
    status: Literal["ok", "failing"] = "ok"
    reason: str | None = Field(default=None, description="why the process should be restarted (503 only)")
    ingest: dict[str, Any] | None = Field(default=None, description="the ingestion's progress, when it runs here")


class IngestState(BaseModel):
    enabled: bool
    state: str
    last_error: str
    counts: dict[str, int]


class Readiness(BaseModel):
    ready: bool = Field(description="at least one model is loaded")
    degraded: bool = Field(description="ready but Redis is down (explanations uncached, pod routes 503)")
    redis: Literal["up", "down"]
    redis_error: str = ""
    models: int
    ingest: IngestState


class PurgeResult(BaseModel):
    deleted: int


class TokenRole(BaseModel):
    role: Literal["read", "admin"]
