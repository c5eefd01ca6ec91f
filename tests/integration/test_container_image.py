"""One container image from the Kubernetes pod object to the SIEM documents: the collector's image index, the
envelope of the verdicts, the scorer's finding, and what the SIEM exporters make of it (ECS ``container.image``,
the CEF ``flexString2``). Without an image (an emulated pod) every output leaves it out. The featurizer's hop is
in tests/featurizer/test_container_image.py."""

from __future__ import annotations

import json

from minerlens_collector.agent.container_images import ContainerImages
from minerlens_core.schemas.envelope import ContainerImage
from minerlens_core.schemas.ocsf import DetectionFinding
from minerlens_siem.cef import view_to_cef
from minerlens_siem.decode import Alert, decode_alert
from minerlens_siem.ecs import view_to_ecs

from tests.collector.test_k8s_metadata import pod
from tests.scorer.test_alerting import T0, engine, verdict

CID = "ab12" * 16
DIGEST = "sha256:" + "e3" * 32


def _finding(image: ContainerImage | None) -> DetectionFinding:
    e = engine()
    out: list[DetectionFinding] = []
    for i, score in enumerate([0.95, 0.96, 0.97]):
        v = verdict(i, score, container=CID)
        v = v.model_copy(update={"envelope": v.envelope.model_copy(update={"container_image": image})})
        out += e.observe(v, now=float(T0 + i))
    (created,) = out
    return created


def _alert(finding: DetectionFinding) -> Alert:
    alert = decode_alert(finding.model_dump_json(exclude_none=True).encode())
    assert isinstance(alert, Alert)
    return alert


def test_the_image_reaches_the_siem_documents() -> None:
    obj = pod("u-1", "web", {}, cid=CID)
    obj["status"]["containerStatuses"][0] |= {"image": "registry.local:5000/shop/web:2.1", "imageID": DIGEST}
    images = ContainerImages()
    images.update("u-1", obj)
    image = images.lookup(CID)
    assert image == ContainerImage(name="registry.local:5000/shop/web", tag="2.1", digest=DIGEST)

    view = _alert(_finding(image)).view
    assert view.image is not None
    assert (view.image.name, view.image.tag, view.image.digest) == (image.name, "2.1", DIGEST)
    assert view.image.reference == "registry.local:5000/shop/web:2.1"
    ecs = view_to_ecs(view)
    assert ecs["container"] == {
        "id": CID,
        "image": {"name": "registry.local:5000/shop/web", "tag": ["2.1"], "hash": {"all": [DIGEST]}},
    }
    cef = view_to_cef(view)
    assert "flexString2Label=containerImage flexString2=registry.local:5000/shop/web:2.1" in cef


def test_the_ocsf_container_image_alone_is_enough() -> None:
    """A finding from another producer (or a future one) with only OCSF ``container.image``."""
    finding = _finding(ContainerImage(name="quay.io/app", tag="1", digest=DIGEST))
    doc = json.loads(finding.model_dump_json(exclude_none=True))
    doc["unmapped"]["minerlens"].pop("image")
    view = _alert(DetectionFinding.model_validate(doc)).view
    assert view.image is not None
    assert view.image.reference == "quay.io/app:1"
    assert view.image.digest == DIGEST


def test_an_unknown_image_is_left_out_everywhere() -> None:
    view = _alert(_finding(None)).view
    assert view.image is None
    assert "image" not in view_to_ecs(view)["container"]
    assert "flexString2" not in view_to_cef(view)
