"""The envelope every minerlens message carries: who (cluster, node, pod, container) and when.

Every field is bounded (``schemas.bounds``): pod names follow Kubernetes' own rules, so ``a/b`` or a
name with a NUL byte cannot reach a consumer, and ``namespace``/``name`` stay empty when only the pod's
cgroup (its uid) is known.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, ValidationError, model_serializer

from minerlens_core.schemas.bounds import (
    BoundedTime,
    ClusterName,
    ContainerIdOrEmpty,
    ImageDigestOrEmpty,
    ImageName,
    ImageTagOrEmpty,
    K8sLabels,
    K8sNameOrEmpty,
    K8sNamespaceOrEmpty,
    NodeName,
    PodUid,
)

SCHEMA_VERSION: Literal[1] = 1
"""Major version of the wire contract. A consumer refuses messages of another major version."""

NODE_POD_UID = "node"
"""Pseudo pod uid used for processes that run on the node outside any pod (when reported at all)."""

Uid = PodUid
"""Kept for importers of the old name; see ``schemas.bounds.PodUid``."""


class PodRef(BaseModel):
    """Identity of a pod. ``namespace``/``name`` are empty when only the cgroup (uid) is known."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uid: PodUid
    namespace: K8sNamespaceOrEmpty = ""
    name: K8sNameOrEmpty = ""
    labels: K8sLabels = Field(default_factory=dict)

    @property
    def display(self) -> str:
        if self.namespace and self.name:
            return f"{self.namespace}/{self.name}"
        return f"pod:{self.uid}"


class ContainerImage(BaseModel):
    """The image a container runs, as the Kubernetes API reports it (``status.containerStatuses[]``): ``name`` the
    repository (``docker.io/library/nginx``), ``tag`` (``1.25``; empty when the image was named by digest only) and
    ``digest`` (``sha256:...`` of ``imageID``: the repository digest, or the local image id; empty when unknown).
    Nothing is added that the API did not say: no default registry, no implicit ``latest``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ImageName
    tag: ImageTagOrEmpty = ""
    digest: ImageDigestOrEmpty = ""

    @property
    def reference(self) -> str:
        """How people write the image (``image_reference``)."""
        return image_reference(self.name, self.tag, self.digest)

    @classmethod
    def parse(cls, image: str, image_id: str = "") -> ContainerImage | None:
        """From an image reference (``[registry/]path[:tag][@digest]``) and optionally the runtime's image id
        (``[repo@]sha256:...``); None when ``image`` names no repository (empty, or only an id) or does not
        fit the contract (it is left out, never guessed)."""
        name, tag, digest = _split_reference(image)
        if not digest:
            _, _, digest = _split_reference(image_id)
            if not digest and ":" in image_id and "/" not in image_id:
                digest = image_id.strip()  # a bare local image id: sha256:<hex>
        if not name:
            return None
        try:
            return cls(name=name, tag=tag, digest=digest)
        except ValidationError:
            try:  # a malformed digest must not hide a well-formed name
                return cls(name=name, tag=tag)
            except ValidationError:
                return None


def image_reference(name: str, tag: str, digest: str) -> str:
    """``name:tag`` (``name@digest`` without a tag, ``name`` without either): how people write an image."""
    if tag:
        return f"{name}:{tag}"
    return f"{name}@{digest}" if digest else name


def _split_reference(ref: str) -> tuple[str, str, str]:
    """(name, tag, digest) of ``[scheme://][registry[:port]/]path[:tag][@digest]``; name "" for a bare id."""
    ref = ref.strip().rpartition("://")[2]  # docker-pullable://, docker://
    name, _, digest = ref.partition("@")
    tag = ""
    colon = name.rfind(":")
    if colon > name.rfind("/"):  # a colon in the last path component is a tag (not a registry's port)
        name, tag = name[:colon], name[colon + 1 :]
    if "/" not in name and name in ("sha256", "sha512") and not digest:  # "sha256:<hex>": an id, not a name
        return "", "", f"{name}:{tag}"
    return name, tag, digest


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """Common header of every message (Tetragon/Falco style): schema version, origin and time."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    cluster: ClusterName = "default"
    node: NodeName
    pod: PodRef | None = None
    container_id: ContainerIdOrEmpty = ""
    container_image: ContainerImage | None = None
    """the container's image when the collector knows it (from the Kubernetes API); absent, not null, when it
    does not (emulated pods, replays): such messages stay byte-identical to those of before the field"""
    observed_at: BoundedTime = Field(default_factory=utcnow)

    @model_serializer(mode="wrap")
    def _omit_unknown_image(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if self.container_image is None and isinstance(data, dict):
            data.pop("container_image", None)
        return data

    @property
    def key(self) -> bytes:
        """Kafka message key: the pod uid (node name for node-level messages)."""
        return (self.pod.uid if self.pod else f"node:{self.node}").encode()
