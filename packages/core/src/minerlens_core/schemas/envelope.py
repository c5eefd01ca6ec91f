"""The envelope every minerlens message carries: who (cluster, node, pod, container) and when.

Every field is bounded (``schemas.bounds``): pod names follow Kubernetes' own rules, so ``a/b`` or a
name with a NUL byte cannot reach a consumer, and ``namespace``/``name`` stay empty when only the pod's
cgroup (its uid) is known.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from minerlens_core.schemas.bounds import (
    BoundedTime,
    ClusterName,
    ContainerIdOrEmpty,
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
    observed_at: BoundedTime = Field(default_factory=utcnow)

    @property
    def key(self) -> bytes:
        """Kafka message key: the pod uid (node name for node-level messages)."""
        return (self.pod.uid if self.pod else f"node:{self.node}").encode()
