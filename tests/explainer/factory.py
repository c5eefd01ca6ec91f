"""Real feature windows, verdicts and findings for the explainer tests, cut from the committed lab sample."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from minerlens_core.features import FeatureSpec, vectorize_many, window_sequence, windows_from_trace
from minerlens_core.schemas.envelope import Envelope, PodRef
from minerlens_core.schemas.ocsf import (
    ACTIVITY_CLOSE,
    ACTIVITY_CREATE,
    SEVERITY,
    Analytic,
    DetectionFinding,
    FindingInfo,
    Metadata,
    Product,
    Resource,
)
from minerlens_core.schemas.windows import FeatureWindow, ModelRef, Verdict
from minerlens_core.schemas.windows import window_id as make_window_id
from minerlens_core.traces import read_trace

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample-v1"
MINER_TRACE = SAMPLE / "traces" / "miner-randomx-1t-yield-r1.parquet"
BENIGN_TRACE = SAMPLE / "traces" / "gzip-compress-r1.parquet"


def pod_ref(namespace: str, name: str, uid: str | None = None) -> PodRef:
    return PodRef(uid=uid or f"uid-{namespace}-{name}"[:64], namespace=namespace, name=name)


def policy_tag(spec: FeatureSpec) -> str:
    p = spec.window
    return f"time:{p.seconds:g}s" if p.kind == "time" else f"count:{p.size}/{p.stride}"


def feature_windows(trace: Path, spec: FeatureSpec, pod: PodRef, limit: int = 20) -> list[FeatureWindow]:
    """The first ``limit`` windows of a trace as the featurizer would publish them for ``pod``."""
    windows = [w for w in windows_from_trace(read_trace(trace), spec.window) if w.count > 0][:limit]
    X = vectorize_many(windows, spec)
    out = []
    for w, row in zip(windows, X, strict=True):
        env = Envelope(node="node-1", pod=pod, container_id="")
        out.append(
            FeatureWindow(
                envelope=env,
                window_id=make_window_id(pod.uid, "", policy_tag(spec), w.index),
                policy=policy_tag(spec),
                index=w.index,
                start_ns=w.start_ns,
                end_ns=w.end_ns,
                count=w.count,
                complete=w.complete,
                feature_version=spec.version,
                feature_digest=spec.digest,
                features=[None if math.isnan(v) else float(v) for v in row.tolist()],
                sequence=[int(i) for i in window_sequence(w, spec.params)],
            )
        )
    return out


def verdict_for(window: FeatureWindow, score: float, model: ModelRef, threshold: float = 0.5) -> Verdict:
    return Verdict(
        envelope=window.envelope,
        window_id=window.window_id,
        policy=window.policy,
        index=window.index,
        start_ns=window.start_ns,
        end_ns=window.end_ns,
        count=window.count,
        decision="miner" if score > threshold else "benign",
        score=score,
        threshold=threshold,
        model=model,
    )


def finding(
    pod: PodRef, alert_id: str, window_ids: list[str], *, close: bool = False, opened_by: str | None = None
) -> DetectionFinding:
    """A finding as the scorer writes it (``unmapped.minerlens``: alert id, pod, window ids, ``opened_by``)."""
    now = int(datetime.now(UTC).timestamp() * 1000)
    activity = ACTIVITY_CLOSE if close else ACTIVITY_CREATE
    return DetectionFinding(
        activity_id=activity,
        activity_name="Close" if close else "Create",
        type_uid=2004 * 100 + activity,
        type_name="Detection Finding: Create",
        time=now,
        severity_id=4,
        severity=SEVERITY[4],
        status_id=4 if close else 1,
        message=f"cryptominer suspected in {pod.namespace}/{pod.name}",
        metadata=Metadata(product=Product(version="0.1.0"), uid=f"{alert_id}-1", correlation_uid=alert_id),
        finding_info=FindingInfo(
            uid=alert_id,
            title="cryptominer",
            created_time=now,
            analytic=Analytic(name="minerlens-xgboost", version="0.1.0"),
        ),
        resources=[Resource(uid=pod.uid, name=pod.name, namespace=pod.namespace)],
        unmapped={
            "minerlens": {
                "alert_id": alert_id,
                "window_ids": window_ids,
                "pod_uid": pod.uid,
                "namespace": pod.namespace,
                "pod": pod.name,
                "opened_by": opened_by,
            }
        },
    )


def as_vector(window: FeatureWindow) -> np.ndarray:
    return np.asarray(window.vector(), dtype=np.float32)
