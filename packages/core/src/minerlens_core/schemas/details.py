"""``unmapped.minerlens`` of an OCSF Detection Finding: the detector's own details, typed once.

The scorer builds it (``minerlens_scorer.findings``) and restores its alert state from it; the SIEM exporters,
the responder and the explainer read it. Every field is optional for readers (an older or foreign finding may
lack it) and every present field is typed and bounded: a finding whose details are mistyped fails validation
once, here, and each reader decides what that means (dead letter, or the OCSF fields alone). Unknown extra
fields are kept (``extra="allow"``) so that a newer scorer's additions pass through older readers.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from minerlens_core.schemas.envelope import image_reference
from minerlens_core.schemas.ocsf import DetectionFinding

Text = Annotated[str, Field(max_length=4096)]
Id = Annotated[str, Field(max_length=512)]
MAX_ITEMS = 10_000


class _Details(BaseModel):
    model_config = ConfigDict(extra="allow")


class ProcessDetails(_Details):
    """The process an alert names: the evidence window's process (pid, comm, exe; CPU over the window)."""

    pid: int = Field(ge=1, le=(1 << 31) - 1)
    comm: Text = ""
    exe: Text = ""
    cpu_cores: float | None = None


class ImageDetails(_Details):
    """The container image of the alert's evidence window (``Envelope.container_image``), when known."""

    name: Text
    tag: Id = ""
    digest: Id = ""

    @property
    def reference(self) -> str:
        """How people write the image (``envelope.image_reference``)."""
        return image_reference(self.name, self.tag, self.digest)


class ModelDetails(_Details):
    name: Id
    version: Id
    manifest_sha256: Id = ""


class ReasonDetails(_Details):
    """A feature that pushed the score (``reasons[]``)."""

    feature: Id
    value: float | None = None
    baseline: float | None = None
    contribution: float | None = None
    text: Text = ""

    def sentence(self) -> str:
        """The reason as a person reads it: its text, else ``feature=value (baseline b)``."""
        if self.text:
            return self.text
        parts = [f"{self.feature}={_num(self.value)}"]
        if self.baseline is not None:
            parts.append(f"(baseline {_num(self.baseline)})")
        return " ".join(parts)


class EvidenceDetails(_Details):
    """The window an alert shows (the highest-scoring one)."""

    window_id: Id = ""
    score: float | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    scope: Id = "stream"
    process: ProcessDetails | None = None


class PolicyDetails(_Details):
    k: int | None = None
    n: int | None = None
    resolve_m: int | None = None
    resolve_factor: float | None = None
    quiet_timeout_s: float | None = None


class LastEventDetails(_Details):
    """What the last emitted event said (the scorer decides from it when an update is material)."""

    peak: float | None = None
    windows_over: int | None = None
    severity_id: int | None = None


class WindowMark(_Details):
    """The highest window index seen of one stream (replays of it are recognised after a restart)."""

    container_id: Id
    policy: Id
    index: int


class MinerlensDetails(_Details):
    alert_id: Id | None = None
    pod_uid: Id | None = None
    namespace: Id | None = None
    pod: Id | None = None
    labels: dict[str, Text] = Field(default_factory=dict, max_length=MAX_ITEMS)
    container_id: Id | None = None
    image: ImageDetails | None = None
    """the image of ``container_id`` (absent when the collector did not know it)"""
    node: Id | None = None
    cluster: Id | None = None
    window_ids: list[Id] = Field(default_factory=list, max_length=MAX_ITEMS)
    opened_by: Id | None = None
    score: float | None = None
    last_score: float | None = None
    threshold: float | None = None
    resolve_threshold: float | None = None
    windows_over: int | None = None
    windows_seen: int | None = None
    below_run: int | None = None
    policy: PolicyDetails | None = None
    model: ModelDetails | None = None
    reasons: list[ReasonDetails] = Field(default_factory=list, max_length=MAX_ITEMS)
    explain_path: Text | None = None
    explain_window: Id | None = None
    evidence: EvidenceDetails | None = None
    process: ProcessDetails | None = None
    sequence: int | None = None
    last_event: LastEventDetails | None = None
    snapshot: bool = False
    status: Id | None = None
    resolution: Text | None = None
    last_windows: list[WindowMark] = Field(default_factory=list, max_length=MAX_ITEMS)

    @classmethod
    def of(cls, finding: DetectionFinding) -> MinerlensDetails:
        """The details of ``finding`` (empty when it has none); raises ``pydantic.ValidationError`` if mistyped."""
        raw: Any = finding.unmapped.get("minerlens")
        return cls.model_validate(raw if raw is not None else {})

    def reasons_summary(self, limit: int = 5) -> str:
        return "; ".join(r.sentence() for r in self.reasons[:limit])


def _num(value: float | None) -> str:
    return "null" if value is None else f"{value:.6g}"
