"""The envelope every minerlens message carries: who (cluster, node, pod, container) and when."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_VERSION: Literal[1] = 1
"""Major version of the wire contract. A consumer refuses messages of another major version."""

NODE_POD_UID = "node"
"""Pseudo pod uid used for processes that run on the node outside any pod (when reported at all)."""

Uid = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9a-z][0-9a-z_.-]*$")]


class PodRef(BaseModel):
    """Identity of a pod. ``namespace``/``name`` are empty when only the cgroup (uid) is known."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uid: Uid
    namespace: str = Field(default="", max_length=253)
    name: str = Field(default="", max_length=253)
    labels: dict[str, str] = Field(default_factory=dict)

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
    cluster: str = Field(default="default", min_length=1, max_length=253)
    node: str = Field(min_length=1, max_length=253)
    pod: PodRef | None = None
    container_id: str = Field(default="", max_length=128)
    observed_at: AwareDatetime = Field(default_factory=utcnow)

    @property
    def key(self) -> bytes:
        """Kafka message key: the pod uid (node name for node-level messages)."""
        return (self.pod.uid if self.pod else f"node:{self.node}").encode()
