"""A pod with an open alert in the store, through the ingestion logic (what Kafka would deliver), for the
operator API and console tests."""

from __future__ import annotations

from minerlens_core.schemas.details import ImageDetails, ProcessDetails
from minerlens_core.schemas.envelope import PodRef
from minerlens_core.schemas.windows import FeatureWindow
from minerlens_explainer.runtime import Runtime

from tests.explainer.factory import finding, verdict_for
from tests.explainer.test_pods import MODEL

SCORES = [0.2, 0.3, 0.95, 0.97, 0.99, 0.6]


async def seed_alert(
    rt: Runtime, windows: list[FeatureWindow], pod: PodRef, alert_id: str = "alert-1", *,
    comm: str = "xmrig", exe: str = "/tmp/.x/xmrig", image: str = "ghcr.io/acme/web",
) -> None:  # fmt: skip
    """Windows and verdicts of ``pod`` (``windows`` must be its windows) and an open alert opened by the 4th."""
    ing = rt.ingestor()
    s = rt.settings
    for w, score in zip(windows, SCORES, strict=False):
        await ing.handle(s.windows_topic, w.model_dump_json().encode())
        await ing.handle(s.verdicts_topic, verdict_for(w, score, MODEL).model_dump_json().encode())
    ids = [w.window_id for w in windows[2:5]]
    f = finding(pod, alert_id, ids, opened_by=windows[3].window_id)
    m = f.unmapped["minerlens"]
    assert isinstance(m, dict)
    m.update(
        process=ProcessDetails(pid=4242, comm=comm, exe=exe).model_dump(),
        image=ImageDetails(name=image, tag="1.0").model_dump(),
        score=0.99, threshold=0.5, labels=dict(pod.labels),
        reasons=[{"feature": "summary", "text": f"{comm} made 20 syscalls/s while 2.0 cores busy"}],
        model={"name": MODEL.name, "version": MODEL.version},
    )  # fmt: skip
    assert await ing.handle(s.alerts_topic, f.model_dump_json().encode()) == "stored"


def pod_windows(windows: list[FeatureWindow], pod: PodRef) -> list[FeatureWindow]:
    """``windows`` re-labelled as ``pod``'s (window ids follow the pod uid)."""
    out = []
    for w in windows:
        wid = w.window_id.replace(w.envelope.pod.uid if w.envelope.pod else "", pod.uid, 1)
        out.append(w.model_copy(update={"envelope": w.envelope.model_copy(update={"pod": pod}), "window_id": wid}))
    return out
