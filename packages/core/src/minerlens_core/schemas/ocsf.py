"""The alert contract: OCSF 1.x Detection Finding (class 2004), the subset minerlens emits.

Models allow extra fields (OCSF is open for extension) but type every field minerlens sets, so the
scorer cannot emit, and consumers (responder, SIEM exporters) cannot misread, a malformed finding.
Reference: OCSF schema 1.8.0, ``detection_finding`` (category 2 Findings, class 2004);
``type_uid = 2004 * 100 + activity_id``.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

OCSF_VERSION = "1.8.0"
CLASS_UID: Literal[2004] = 2004
CATEGORY_UID: Literal[2] = 2
ACTIVITY_CREATE, ACTIVITY_UPDATE, ACTIVITY_CLOSE = 1, 2, 3
STATUS_NEW, STATUS_IN_PROGRESS, STATUS_RESOLVED = 1, 2, 4
SEVERITY = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical", 6: "Fatal"}
ANALYTIC_LEARNING = 4
"""``analytic.type_id`` 4 = "Learning (ML/DL)"."""
MITRE_T1496 = {
    "version": "14.1",
    "tactic": {"uid": "TA0040", "name": "Impact"},
    "technique": {"uid": "T1496", "name": "Resource Hijacking"},
}


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Product(_Open):
    name: str = "minerlens"
    vendor_name: str = "minerlens"
    version: str


class Metadata(_Open):
    version: str = OCSF_VERSION
    product: Product
    uid: str = Field(description="unique id of this event (alert id + activity + sequence)")
    correlation_uid: str | None = Field(default=None, description="the alert id: all events of one alert share it")
    logged_time: int | None = None


class Analytic(_Open):
    type_id: int = ANALYTIC_LEARNING
    type: str = "Learning (ML/DL)"
    name: str
    uid: str | None = None
    version: str
    algorithm: str | None = None


class FindingInfo(_Open):
    uid: str
    title: str
    desc: str | None = None
    types: list[str] = Field(default_factory=list)
    created_time: int
    first_seen_time: int | None = None
    last_seen_time: int | None = None
    modified_time: int | None = None
    src_url: str | None = Field(default=None, description="where to ask the explainer why")
    analytic: Analytic
    attacks: list[dict[str, Any]] = Field(default_factory=lambda: [MITRE_T1496])


class Orchestrator(_Open):
    name: str = "kubernetes"


class Container(_Open):
    uid: str | None = None
    name: str | None = None
    image: dict[str, Any] | None = None
    pod_uuid: str | None = None
    orchestrator: Orchestrator | None = None


class Resource(_Open):
    """The pod: ``type`` "Kubernetes Pod", ``uid`` pod uid, ``namespace``, ``labels`` as "k=v" strings."""

    type: str = "Kubernetes Pod"
    uid: str
    name: str | None = None
    namespace: str | None = None
    labels: list[str] = Field(default_factory=list)
    cloud_partition: str | None = None


class Device(_Open):
    hostname: str
    type_id: int = 0
    type: str = "Unknown"


class Observation(_Open):
    value: str
    count: int | None = None
    timespan: dict[str, Any] | None = None


class Anomaly(_Open):
    observation_parameter: str
    observation_type: str | None = None
    observations: list[Observation] = Field(default_factory=list)
    observed_pattern: str | None = None


class AnomalyAnalysis(_Open):
    analysis_targets: list[dict[str, Any]] = Field(default_factory=list)
    anomalies: list[Anomaly] = Field(default_factory=list)
    baselines: list[Anomaly] = Field(default_factory=list)


class DetectionFinding(_Open):
    """One Detection Finding event; minerlens-specific data lives under ``unmapped``."""

    class_uid: Literal[2004] = CLASS_UID
    class_name: str = "Detection Finding"
    category_uid: Literal[2] = CATEGORY_UID
    category_name: str = "Findings"
    activity_id: Literal[1, 2, 3]
    activity_name: str
    type_uid: int
    type_name: str
    time: int = Field(description="event time, ms since the Unix epoch")
    severity_id: int = Field(ge=0, le=6)
    severity: str
    status_id: int | None = None
    status: str | None = None
    message: str
    metadata: Metadata
    finding_info: FindingInfo
    is_alert: bool = True
    confidence_id: int | None = Field(default=None, ge=0, le=3)
    confidence_score: int | None = Field(default=None, ge=0, le=100)
    risk_score: int | None = Field(default=None, ge=0, le=100)
    resources: list[Resource] = Field(default_factory=list)
    evidences: list[dict[str, Any]] = Field(default_factory=list)
    anomaly_analyses: list[AnomalyAnalysis] = Field(default_factory=list)
    device: Device | None = None
    cloud: dict[str, Any] | None = None
    unmapped: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _type_uid(self) -> Self:
        if self.type_uid != self.class_uid * 100 + self.activity_id:
            msg = f"type_uid {self.type_uid} != class_uid*100 + activity_id ({self.class_uid * 100 + self.activity_id})"
            raise ValueError(msg)
        if SEVERITY.get(self.severity_id) != self.severity:
            msg = f"severity {self.severity!r} does not match severity_id {self.severity_id}"
            raise ValueError(msg)
        return self

    @property
    def alert_id(self) -> str:
        return self.finding_info.uid

    @property
    def pod(self) -> Resource | None:
        return next((r for r in self.resources if r.type == "Kubernetes Pod"), None)


def decode_finding(data: bytes | str) -> DetectionFinding:
    """Decode one message of the alerts topic; raises ``pydantic.ValidationError`` on bad input."""
    return DetectionFinding.model_validate_json(data)
