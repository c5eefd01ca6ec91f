"""The container image in the contract: ``Envelope.container_image`` (optional, absent when unknown, old messages
decode), how references are parsed, and the finding's ``unmapped.minerlens.image`` and OCSF ``container.image``."""

from __future__ import annotations

import json

import pytest
from minerlens_core.schemas import ContainerImage, Envelope, PodRef, SyscallBatch, decode_syscall_stream
from minerlens_core.schemas.details import ImageDetails, MinerlensDetails
from minerlens_core.schemas.ocsf import Container
from minerlens_core.schemas.windows import decode_window
from pydantic import ValidationError

from tests.responder.alerts import make_finding

DIGEST = "sha256:" + "4f" * 32
NGINX = ContainerImage(name="docker.io/library/nginx", tag="1.25.3", digest=DIGEST)


def _batch(image: ContainerImage | None) -> SyscallBatch:
    env = Envelope(node="n1", pod=PodRef(uid="u1", namespace="shop", name="web-0"), container_id="c" * 64)
    if image is not None:
        env = env.model_copy(update={"container_image": image})
    return SyscallBatch(envelope=env, source="replay", arch="x86_64", seq=0, nr=[0, 1], tid=[7, 7])


@pytest.mark.parametrize(
    ("image", "image_id", "expected"),
    [
        ("docker.io/library/nginx:1.25.3", f"docker.io/library/nginx@{DIGEST}", NGINX),
        ("nginx", "", ContainerImage(name="nginx")),  # no tag said: none invented (no "latest")
        ("registry.local:5000/team/app", DIGEST, ContainerImage(name="registry.local:5000/team/app", digest=DIGEST)),
        (f"ghcr.io/org/miner@{DIGEST}", "", ContainerImage(name="ghcr.io/org/miner", digest=DIGEST)),
        (
            "quay.io/app:v2",
            f"docker-pullable://quay.io/app@{DIGEST}",
            ContainerImage(name="quay.io/app", tag="v2", digest=DIGEST),
        ),
        ("quay.io/app:v2", "not a digest", ContainerImage(name="quay.io/app", tag="v2")),
        (DIGEST, "", None),  # only an id: no repository to name
        ("", DIGEST, None),
        ("bad name with spaces", "", None),
        ("evil\nname:1", "", None),
    ],
)
def test_references_parse_into_repository_tag_and_digest(
    image: str, image_id: str, expected: ContainerImage | None
) -> None:
    assert ContainerImage.parse(image, image_id) == expected


def test_reference_is_how_people_write_it() -> None:
    assert NGINX.reference == "docker.io/library/nginx:1.25.3"
    assert ContainerImage(name="a/b", digest=DIGEST).reference == f"a/b@{DIGEST}"
    assert ContainerImage(name="a/b").reference == "a/b"


def test_an_envelope_with_an_image_round_trips() -> None:
    batch = _batch(NGINX)
    raw = batch.model_dump_json()
    assert json.loads(raw)["envelope"]["container_image"] == {
        "name": "docker.io/library/nginx",
        "tag": "1.25.3",
        "digest": DIGEST,
    }
    assert decode_syscall_stream(raw) == batch


def test_without_an_image_the_field_is_absent_and_old_messages_decode() -> None:
    batch = _batch(None)
    raw = batch.model_dump_json()
    assert "container_image" not in raw, "not null: such messages stay what they were before the field"
    assert "container_image" not in batch.model_dump()["envelope"]
    decoded = decode_syscall_stream(raw)
    assert decoded == batch
    assert decoded.envelope.container_image is None
    old = json.loads(raw)  # a message of a collector from before the field
    assert "container_image" not in old["envelope"]
    assert decode_syscall_stream(json.dumps(old)).envelope.container_image is None


@pytest.mark.parametrize(
    "bad",
    [
        {"name": ""},
        {"name": "x" * 513},
        {"name": "nginx", "tag": "a b"},
        {"name": "nginx", "digest": "sha256:xyz"},
        {"name": "nginx", "colour": "red"},
        {"name": "ng\u202einx"},
    ],
)
def test_a_malformed_image_is_refused(bad: dict[str, str]) -> None:
    doc = json.loads(_batch(None).model_dump_json())
    doc["envelope"]["container_image"] = bad
    with pytest.raises(ValidationError, match="container_image"):
        decode_syscall_stream(json.dumps(doc))


def test_windows_carry_it_too() -> None:
    """Feature windows and verdicts share the envelope: the image decodes from the windows topic as well."""
    env = Envelope(node="n1", pod=PodRef(uid="u1"), container_id="c1", container_image=NGINX)
    doc = {
        "envelope": json.loads(env.model_dump_json()),
        "window_id": "u1/c1/time:1s/1",
        "policy": "time:1s",
        "index": 1,
        "count": 0,
        "feature_version": "2",
        "feature_digest": "0" * 64,
        "features": [],
    }
    assert decode_window(json.dumps(doc)).envelope.container_image == NGINX


def test_finding_details_and_ocsf_container_image() -> None:
    finding = make_finding()
    assert MinerlensDetails.of(finding).image is None, "older findings have none"
    assert finding.container_object() is None
    doc = finding.model_dump(mode="json")
    doc["unmapped"]["minerlens"]["image"] = {"name": "docker.io/library/nginx", "tag": "1.25.3", "digest": DIGEST}
    doc["container"] = {"uid": "c" * 64, "image": {"name": "docker.io/library/nginx", "tag": "1.25.3", "uid": DIGEST}}
    again = type(finding).model_validate(doc)
    details = MinerlensDetails.of(again)
    assert details.image == ImageDetails(name="docker.io/library/nginx", tag="1.25.3", digest=DIGEST)
    assert details.image.reference == "docker.io/library/nginx:1.25.3"
    container = again.container_object()
    assert container is not None
    assert container.image is not None
    assert (container.image.name, container.image.tag, container.image.uid) == (
        "docker.io/library/nginx",
        "1.25.3",
        DIGEST,
    )
    doc["container"] = {"image": "nginx"}  # not an OCSF Image object: ignored by readers, not fatal
    assert type(finding).model_validate(doc).container_object() is None
    assert Container.model_validate({"image": {"name": "a"}}).image is not None
