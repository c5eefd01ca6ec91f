"""The alert contract: OCSF 1.x Detection Finding (class 2004), the subset minerlens emits.

Models allow extra fields (OCSF is open for extension) but type every field minerlens sets, so the
scorer cannot emit, and consumers (responder, SIEM exporters) cannot misread, a malformed finding.
Reference: OCSF schema 1.8.0, ``detection_finding`` (category 2 Findings, class 2004);
``type_uid = 2004 * 100 + activity_id``.

Bounds (``schemas.bounds``): integers are int64 (times and counts non-negative), texts have no control
characters (a finding ends up in syslog/CEF lines and terminals), the pod is named by Kubernetes' rules,
and the open parts (extension fields, ``unmapped``, ``evidences``, ...) are ``BoundedJson``: nesting,
integer range, string length and item count limited.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from minerlens_core.schemas.bounds import (
    MAX_LABELS,
    BoundedJsonObject,
    ContainerIdOrEmpty,
    Int64,
    K8sNameOrEmpty,
    K8sNamespaceOrEmpty,
    LongText,
    NoControl,
    NodeName,
    NonNegInt64,
    PodUid,
    SafeText,
    ShortText,
    UnixMs,
    check_json,
)

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


MAX_ITEMS = 256
"""Entries of a finding's lists (resources, evidences, observations, ...)."""
_LabelText = Annotated[str, Field(max_length=253 + 1 + 63 + 1 + 63), NoControl]
"""``key=value`` of a Kubernetes label"""


class _Open(BaseModel):
    """OCSF objects are open for extension; extension fields are bounded JSON values."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _bounded_extras(self) -> Self:
        if self.__pydantic_extra__:
            if len(self.__pydantic_extra__) > MAX_ITEMS:
                msg = f"more than {MAX_ITEMS} extension fields"
                raise ValueError(msg)
            check_json(self.__pydantic_extra__)
        return self


class Product(_Open):
    name: ShortText = "minerlens"
    vendor_name: ShortText = "minerlens"
    version: ShortText


class Metadata(_Open):
    version: ShortText = OCSF_VERSION
    product: Product
    uid: SafeText = Field(description="unique id of this event (alert id + activity + sequence)")
    correlation_uid: SafeText | None = Field(default=None, description="the alert id: all events of one alert share it")
    logged_time: UnixMs | None = None


class Analytic(_Open):
    type_id: Int64 = ANALYTIC_LEARNING
    type: ShortText = "Learning (ML/DL)"
    name: ShortText
    uid: ShortText | None = None
    version: ShortText
    algorithm: ShortText | None = None


class FindingInfo(_Open):
    uid: SafeText
    title: SafeText
    desc: LongText | None = None
    types: list[ShortText] = Field(default_factory=list, max_length=MAX_ITEMS)
    created_time: UnixMs
    first_seen_time: UnixMs | None = None
    last_seen_time: UnixMs | None = None
    modified_time: UnixMs | None = None
    src_url: LongText | None = Field(default=None, description="where to ask the explainer why")
    analytic: Analytic
    attacks: list[BoundedJsonObject] = Field(default_factory=lambda: [MITRE_T1496], max_length=MAX_ITEMS)


class Orchestrator(_Open):
    name: ShortText = "kubernetes"


class Image(_Open):
    """OCSF Image: ``name`` the repository (``docker.io/library/nginx``), ``tag``, ``uid`` the image digest."""

    name: SafeText | None = None
    tag: ShortText | None = None
    uid: SafeText | None = None


class Container(_Open):
    """OCSF Container (the finding's ``container``, an extension of Detection Finding minerlens sets)."""

    uid: ContainerIdOrEmpty | None = None
    name: ShortText | None = None
    image: Image | None = None
    pod_uuid: PodUid | None = None
    orchestrator: Orchestrator | None = None


class Resource(_Open):
    """The pod: ``type`` "Kubernetes Pod", ``uid`` pod uid, ``namespace``, ``labels`` as "k=v" strings."""

    type: ShortText = "Kubernetes Pod"
    uid: PodUid
    name: K8sNameOrEmpty | None = None
    namespace: K8sNamespaceOrEmpty | None = None
    labels: list[_LabelText] = Field(default_factory=list, max_length=MAX_LABELS)
    cloud_partition: ShortText | None = None


class Device(_Open):
    hostname: NodeName
    type_id: Int64 = 0
    type: ShortText = "Unknown"


class Observation(_Open):
    value: SafeText
    count: NonNegInt64 | None = None
    timespan: BoundedJsonObject | None = None


class Anomaly(_Open):
    observation_parameter: SafeText
    observation_type: ShortText | None = None
    observations: list[Observation] = Field(default_factory=list, max_length=MAX_ITEMS)
    observed_pattern: SafeText | None = None


class AnomalyAnalysis(_Open):
    analysis_targets: list[BoundedJsonObject] = Field(default_factory=list, max_length=MAX_ITEMS)
    anomalies: list[Anomaly] = Field(default_factory=list, max_length=MAX_ITEMS)
    baselines: list[Anomaly] = Field(default_factory=list, max_length=MAX_ITEMS)


class DetectionFinding(_Open):
    """One Detection Finding event; minerlens-specific data lives under ``unmapped``."""

    class_uid: Literal[2004] = CLASS_UID
    class_name: ShortText = "Detection Finding"
    category_uid: Literal[2] = CATEGORY_UID
    category_name: ShortText = "Findings"
    activity_id: Literal[1, 2, 3]
    activity_name: ShortText
    type_uid: Int64
    type_name: ShortText
    time: UnixMs = Field(description="event time, ms since the Unix epoch")
    severity_id: int = Field(ge=0, le=6)
    severity: ShortText
    status_id: Int64 | None = None
    status: ShortText | None = None
    message: LongText
    metadata: Metadata
    finding_info: FindingInfo
    is_alert: bool = True
    confidence_id: int | None = Field(default=None, ge=0, le=3)
    confidence_score: int | None = Field(default=None, ge=0, le=100)
    risk_score: int | None = Field(default=None, ge=0, le=100)
    resources: list[Resource] = Field(default_factory=list, max_length=MAX_ITEMS)
    evidences: list[BoundedJsonObject] = Field(default_factory=list, max_length=MAX_ITEMS)
    anomaly_analyses: list[AnomalyAnalysis] = Field(default_factory=list, max_length=MAX_ITEMS)
    device: Device | None = None
    cloud: BoundedJsonObject | None = None
    unmapped: BoundedJsonObject = Field(default_factory=dict)

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

    def container_object(self) -> Container | None:
        """The ``container`` extension (OCSF Container: uid, image, pod_uuid) when present and well-formed."""
        raw = (self.model_extra or {}).get("container")
        if not isinstance(raw, dict):
            return None
        try:
            return Container.model_validate(raw)
        except ValidationError:
            return None


def decode_finding(data: bytes | str) -> DetectionFinding:
    """Decode one message of the alerts topic; raises ``pydantic.ValidationError`` on bad input."""
    return DetectionFinding.model_validate_json(data)
