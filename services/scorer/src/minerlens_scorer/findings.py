"""Alert events as OCSF 1.8 Detection Findings (class 2004); docs/alerts.md explains every field."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from minerlens_core.schemas.details import (
    EvidenceDetails,
    ImageDetails,
    LastEventDetails,
    MinerlensDetails,
    ModelDetails,
    PolicyDetails,
    ProcessDetails,
    ReasonDetails,
    WindowMark,
)
from minerlens_core.schemas.envelope import ContainerImage
from minerlens_core.schemas.ocsf import (
    ACTIVITY_CLOSE,
    ACTIVITY_CREATE,
    SEVERITY,
    STATUS_IN_PROGRESS,
    STATUS_NEW,
    STATUS_RESOLVED,
    Analytic,
    Anomaly,
    AnomalyAnalysis,
    Container,
    DetectionFinding,
    Device,
    FindingInfo,
    Image,
    Metadata,
    Observation,
    Orchestrator,
    Product,
    Resource,
)
from minerlens_core.schemas.windows import ProcessRef, Reason

from minerlens_scorer.alert_state import AlertEvent, AlertPolicy, OpenAlert, PodState

ACTIVITY_NAMES = {1: "Create", 2: "Update", 3: "Close"}
STATUS_NAMES = {STATUS_NEW: "New", STATUS_IN_PROGRESS: "In Progress", STATUS_RESOLVED: "Resolved"}
CONFIDENCE_NAMES = {1: "Low", 2: "Medium", 3: "High"}
DEVICE_SERVER = 1
FINDING_TYPES = ["Resource Hijacking", "Cryptomining"]


def explain_path(namespace: str, pod: str, window_id: str) -> str:
    """The explainer route that explains ``window_id`` of the pod ("" when the pod's name is unknown)."""
    if not namespace or not pod:
        return ""
    return f"/v1/pods/{quote(namespace, safe='')}/{quote(pod, safe='')}/explanation?window={quote(window_id, safe='')}"


def process_text(process: ProcessRef | None) -> str:
    """How an alert names the process: ``php-fpm (pid 4242, /usr/bin/xmrig)``; "" when unknown."""
    if process is None:
        return ""
    exe = f", {process.exe}" if process.exe else ""
    return f"{process.comm or '?'} (pid {process.pid}{exe})"


def ocsf_image(image: ContainerImage | None) -> Image | None:
    """OCSF Image of a container image: ``name`` the repository, ``tag``, ``uid`` the digest (unknowns left out)."""
    if image is None:
        return None
    return Image(name=image.name, tag=image.tag or None, uid=image.digest or None)


def confidence(alert: OpenAlert, pod: PodState) -> tuple[int, int]:
    """(confidence_id, confidence_score): the mean primary score of the pod's last n scored windows."""
    recent = [s.score for s in pod.recent] or [alert.last_score]
    score = round(100 * sum(recent) / len(recent))
    return (3 if score >= 80 else 2 if score >= 50 else 1), score


def _anomalies(reasons: list[Reason], target: dict[str, Any]) -> list[AnomalyAnalysis]:
    if not reasons:
        return []
    return [
        AnomalyAnalysis(
            analysis_targets=[target],
            anomalies=[
                Anomaly(
                    observation_parameter=r.feature,
                    observation_type="syscall feature",
                    observations=[Observation(value=f"{r.value:.6g}" if r.value is not None else "unknown")],
                    observed_pattern=r.text,
                )
                for r in reasons
            ],
            baselines=[
                Anomaly(
                    observation_parameter=r.feature,
                    observation_type="benign median",
                    observations=[Observation(value=f"{r.baseline:.6g}")],
                )
                for r in reasons
                if r.baseline is not None
            ],
        )
    ]


class FindingFactory:
    """Builds the finding of an ``AlertEvent``; the ``emit`` callable of ``AlertEngine``."""

    def __init__(self, policy: AlertPolicy, product_version: str, explain_base_url: str = "") -> None:
        self.policy = policy
        self.product_version = product_version
        self.explain_base_url = explain_base_url.rstrip("/")

    def __call__(self, event: AlertEvent) -> DetectionFinding:
        return self.build(event)

    def build(self, event: AlertEvent) -> DetectionFinding:
        a, p = event.alert, event.pod
        activity = event.activity
        status = {ACTIVITY_CREATE: STATUS_NEW, ACTIVITY_CLOSE: STATUS_RESOLVED}.get(activity, STATUS_IN_PROGRESS)
        ns, name = p.pod.namespace, p.pod.name
        who = f"{ns}/{name}" if ns and name else f"pod {p.uid}"
        path = explain_path(ns, name, a.evidence.window_id)
        lower = self.policy.resolve_factor * a.threshold
        conf_id, conf_score = confidence(a, p)
        severity_id = a.severity_id
        top = "; ".join(r.text for r in a.evidence.reasons[:3])
        proc = process_text(a.evidence.process)
        title = f"Cryptominer suspected in pod {who}" + (f", process {proc}" if proc else "")
        scope = "process" if a.evidence.scope == "process" else "pod"
        image = a.evidence.image
        container = f"container {a.evidence.container_id or '-'}" + (f" (image {image.reference})" if image else "")
        if proc:
            lead = f"Process {proc} in {container} ({scope} window). "
        else:
            lead = f"Evidence from {container}. " if image else ""
        desc = (
            lead + f"{a.windows_over} of {a.windows_seen} windows of {who} on node {p.node} scored over the "
            f"{a.model.name} {a.model.version} threshold {a.threshold:.3f} (peak {a.peak:.3f}, alert policy "
            f"{self.policy})." + (f" Top reasons: {top}." if top else "")
        )
        if activity == ACTIVITY_CLOSE:
            message = f"Resolved: cryptominer alert for pod {who}: {event.resolution}"
        else:
            message = f"{title}: score {a.peak:.3f}" + (f"; {top}" if top else "")
        container_id = a.evidence.container_id
        labels = [f"{k}={v}" for k, v in sorted(p.pod.labels.items())]
        process = ProcessDetails.model_validate(a.evidence.process.model_dump()) if a.evidence.process else None
        details = MinerlensDetails(
            alert_id=a.alert_id,
            pod_uid=p.uid,
            namespace=ns,
            pod=name,
            labels=dict(p.pod.labels),
            container_id=container_id,
            image=ImageDetails(name=image.name, tag=image.tag, digest=image.digest) if image else None,
            node=p.node,
            cluster=p.cluster,
            window_ids=list(a.window_ids),
            opened_by=a.opened_by,
            score=a.peak,
            last_score=a.last_score,
            threshold=a.threshold,
            resolve_threshold=lower,
            windows_over=a.windows_over,
            windows_seen=a.windows_seen,
            below_run=a.below_run,
            policy=PolicyDetails(
                k=self.policy.k,
                n=self.policy.n,
                resolve_m=self.policy.resolve_m,
                resolve_factor=self.policy.resolve_factor,
                quiet_timeout_s=self.policy.quiet_timeout_s,
            ),
            model=ModelDetails.model_validate(a.model.model_dump()),
            reasons=[ReasonDetails.model_validate(r.model_dump()) for r in a.evidence.reasons],
            explain_path=path,
            explain_window=a.evidence.window_id,
            evidence=EvidenceDetails(
                window_id=a.evidence.window_id,
                score=a.evidence.score,
                start_ms=a.evidence.start_ms,
                end_ms=a.evidence.end_ms,
                scope=a.evidence.scope,
                process=process,
            ),
            process=process,
            sequence=a.sequence,
            last_event=LastEventDetails(
                peak=a.emitted_peak, windows_over=a.emitted_over, severity_id=a.emitted_severity
            ),
            snapshot=event.snapshot,
            status=STATUS_NAMES[status],
            resolution=event.resolution,
            last_windows=[
                WindowMark(container_id=c, policy=pol, index=i) for (c, pol), i in sorted(p.last_windows.items())
            ],
        )
        unmapped = details.model_dump(mode="json")
        target = {"type": "Kubernetes Pod", "uid": p.uid, "name": name or None, "namespace": ns or None}
        extra: dict[str, Any] = {
            "start_time": a.first_seen_ms,
            "end_time": a.last_seen_ms,
            "confidence": CONFIDENCE_NAMES[conf_id],
            "container": Container(
                uid=container_id or None, image=ocsf_image(image), pod_uuid=p.uid, orchestrator=Orchestrator()
            ).model_dump(exclude_none=True),
        }
        return DetectionFinding(
            activity_id=activity,  # type: ignore[arg-type]  # 1..3 by construction
            activity_name=ACTIVITY_NAMES[activity],
            type_uid=2004 * 100 + activity,
            type_name=f"Detection Finding: {ACTIVITY_NAMES[activity]}",
            time=event.now_ms,
            severity_id=severity_id,
            severity=SEVERITY[severity_id],
            status_id=status,
            status=STATUS_NAMES[status],
            message=message,
            metadata=Metadata(
                product=Product(version=self.product_version),
                uid=f"{a.alert_id}:{a.sequence}",
                correlation_uid=a.alert_id,
                logged_time=event.now_ms,
            ),
            finding_info=FindingInfo(
                uid=a.alert_id,
                title=title,
                desc=desc,
                types=FINDING_TYPES,
                created_time=a.created_ms,
                first_seen_time=a.first_seen_ms,
                last_seen_time=a.last_seen_ms,
                modified_time=event.now_ms,
                src_url=(self.explain_base_url + path) if path else None,
                analytic=Analytic(
                    name=a.model.name,
                    uid=a.model.manifest_sha256 or None,
                    version=a.model.version,
                ),
            ),
            is_alert=activity != ACTIVITY_CLOSE,
            confidence_id=conf_id,
            confidence_score=conf_score,
            resources=[Resource(uid=p.uid, name=name or None, namespace=ns or None, labels=labels)],
            anomaly_analyses=_anomalies(a.evidence.reasons, {k: v for k, v in target.items() if v is not None}),
            device=Device(hostname=p.node or "unknown", type_id=DEVICE_SERVER, type="Server"),
            unmapped={"minerlens": unmapped},
            **extra,
        )
