"""Findings name the container image of their evidence when the pipeline knew it: OCSF ``container.image``
(name, tag, uid), ``unmapped.minerlens.image`` and the description; kept across a restart; absent, never
invented, when unknown (emulated pods)."""

from __future__ import annotations

from minerlens_core.schemas.details import MinerlensDetails
from minerlens_core.schemas.envelope import ContainerImage
from minerlens_core.schemas.ocsf import DetectionFinding, decode_finding
from minerlens_core.schemas.windows import ProcessRef, Verdict

from tests.scorer.test_alerting import T0, activities, engine, verdict

IMAGE = ContainerImage(name="docker.io/library/nginx", tag="1.25.3", digest="sha256:" + "9c" * 32)


def _verdict(index: int, score: float, image: ContainerImage | None) -> Verdict:
    v = verdict(index, score)
    env = v.envelope.model_copy(update={"container_image": image})
    proc = ProcessRef(pid=4242, comm="nginx", exe="/usr/sbin/nginx")
    return v.model_copy(update={"envelope": env, "process": proc})


def _feed(e: object, scores: list[float], image: ContainerImage | None, start: int = 0) -> list[DetectionFinding]:
    out: list[DetectionFinding] = []
    for i, s in enumerate(scores, start=start):
        out += e.observe(_verdict(i, s, image), now=float(T0 + i))  # type: ignore[attr-defined]
    return out


def test_the_finding_carries_the_image_process_and_executable() -> None:
    (created,) = _feed(engine(), [0.95, 0.95, 0.97], IMAGE)
    assert activities([created]) == ["Create"]
    doc = created.model_dump(mode="json", exclude_none=True)
    assert doc["container"]["image"] == {"name": "docker.io/library/nginx", "tag": "1.25.3", "uid": IMAGE.digest}
    assert doc["container"]["uid"] == "c0"
    details = MinerlensDetails.of(created)
    assert details.image is not None
    assert (details.image.name, details.image.tag, details.image.digest) == (IMAGE.name, IMAGE.tag, IMAGE.digest)
    assert details.process is not None
    assert (details.process.comm, details.process.exe) == ("nginx", "/usr/sbin/nginx")
    assert "image docker.io/library/nginx:1.25.3" in (created.finding_info.desc or "")
    assert decode_finding(created.model_dump_json()) == created


def test_without_an_image_none_is_invented() -> None:
    (created,) = _feed(engine(), [0.95, 0.95, 0.97], None)
    doc = created.model_dump(mode="json", exclude_none=True)
    assert "image" not in doc["container"]
    assert MinerlensDetails.of(created).image is None
    assert "image" not in (created.finding_info.desc or "")
    container = created.container_object()
    assert container is not None
    assert container.image is None


def test_a_restarted_scorer_keeps_the_image_of_the_open_alert() -> None:
    created = _feed(engine(), [0.95, 0.95, 0.97], IMAGE)
    e2 = engine()
    assert e2.restore([decode_finding(f.model_dump_json(exclude_none=True)) for f in created]) == 1
    assert e2.open_alerts["uid-a"].evidence.image == IMAGE
    # the next event, built from the restored state before any new evidence, still names it
    closed = _feed(e2, [0.1, 0.1, 0.1], None, start=3)
    assert activities(closed) == ["Close"]
    assert MinerlensDetails.of(closed[0]).image is not None


def test_a_malformed_recorded_image_is_dropped_on_restore_not_fatal() -> None:
    (created,) = _feed(engine(), [0.95, 0.95, 0.97], IMAGE)
    doc = created.model_dump(mode="json", exclude_none=True)
    doc["unmapped"]["minerlens"]["image"] = {"name": "not a name", "tag": "x"}
    e2 = engine()
    assert e2.restore([DetectionFinding.model_validate(doc)]) == 1
    assert e2.open_alerts["uid-a"].evidence.image is None
