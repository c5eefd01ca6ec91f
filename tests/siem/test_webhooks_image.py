"""The Falco event and the Alertmanager alert name the container image when the finding has one, and leave it
out otherwise."""

from __future__ import annotations

from minerlens_core.schemas.envelope import ContainerImage
from minerlens_siem.decode import Alert, decode_alert
from minerlens_siem.webhooks import alertmanager_alert, falco_payload

from tests.integration.test_container_image import _finding

IMAGE = ContainerImage(name="registry.local:5000/shop/web", tag="2.1", digest="sha256:" + "e3" * 32)


def _view(image: ContainerImage | None):  # type: ignore[no-untyped-def]
    alert = decode_alert(_finding(image).model_dump_json(exclude_none=True).encode())
    assert isinstance(alert, Alert)
    return alert.view


def test_falco_output_fields_name_the_image_when_known() -> None:
    fields = falco_payload(_view(IMAGE))["output_fields"]
    assert fields["container.image.repository"] == "registry.local:5000/shop/web"
    assert fields["container.image.tag"] == "2.1"
    assert fields["container.image.digest"] == IMAGE.digest
    assert fields["container.image"] == "registry.local:5000/shop/web:2.1"
    assert " image=registry.local:5000/shop/web:2.1 " in falco_payload(_view(IMAGE))["output"]
    assert alertmanager_alert(_view(IMAGE))["annotations"]["image"] == "registry.local:5000/shop/web:2.1"
    assert "image" not in alertmanager_alert(_view(IMAGE))["labels"], "labels are the alert's identity only"


def test_falco_output_fields_leave_an_unknown_image_out() -> None:
    payload = falco_payload(_view(None))
    assert not [k for k in payload["output_fields"] if k.startswith("container.image")]
    assert " image=" not in payload["output"]
    assert "image" not in alertmanager_alert(_view(None))["annotations"]
