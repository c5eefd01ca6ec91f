"""Messages on the featurizer's internal control topic (same partition count as the input topic).

A worker's timer sends a ``Tick`` to every partition: the worker that owns the partition then closes
time windows of quiet streams (watermark) and flushes idle ones *inside* an event of that partition,
so its table writes go to the right changelog partition and replay consistently. ``NodeLoss`` is a
node-wide drop report fanned out to every partition, because that node's pods are spread over all of
them (and over all workers).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class Tick(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["tick"] = "tick"
    wall: float = Field(description="sender's wall clock (s); idle timeouts are measured with it")
    marks: dict[str, int] = Field(default_factory=dict, description="node -> latest batch end (ns) the sender saw")
    sender: str = ""


class NodeLoss(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["node_loss"] = "node_loss"
    node: str
    lost_events: int = Field(ge=0)
    reason: str
    origin: str = Field(default="", description="topic/partition/offset of the drop report")


ControlMessage = Annotated[Tick | NodeLoss, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[Tick | NodeLoss] = TypeAdapter(ControlMessage)


def decode_control(raw: bytes) -> Tick | NodeLoss:
    return _ADAPTER.validate_json(raw)


def encode_control(message: Tick | NodeLoss) -> bytes:
    return message.model_dump_json().encode()
