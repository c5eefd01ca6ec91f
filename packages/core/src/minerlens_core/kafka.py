"""aiokafka factories and message headers shared by every service (needs the ``kafka`` extra)."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import BaseModel

from minerlens_core.schemas.envelope import SCHEMA_VERSION
from minerlens_core.settings import KafkaSettings

Headers = list[tuple[str, bytes]]


def message_headers(message: BaseModel) -> Headers:
    """Headers every minerlens message carries, so consumers can route without decoding the body."""
    kind = getattr(message, "kind", type(message).__name__)
    return [
        ("minerlens.kind", str(kind).encode()),
        ("minerlens.schema_version", str(SCHEMA_VERSION).encode()),
        ("content-type", b"application/json"),
    ]


def dead_letter_headers(
    reason: str, error: BaseException | None, source_topic: str, offset: int, partition: int | None = None
) -> Headers:
    """Headers of a dead-lettered message: why, and where it came from (topic, partition, offset)."""
    headers = [
        ("error.reason", reason.encode()[:1024]),
        ("source.topic", source_topic.encode()),
        ("source.offset", str(offset).encode()),
    ]
    if partition is not None:
        headers.append(("source.partition", str(partition).encode()))
    if error is not None:
        headers.append(("error.class", type(error).__name__.encode()))
        headers.append(("error.msg", str(error).encode()[:4096]))
    return headers


def make_producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent, acks=all producer (ordering per partition survives retries)."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "client_id": settings.client_id,
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None if settings.compression == "none" else settings.compression,
        "request_timeout_ms": settings.request_timeout_ms,
        "linger_ms": 5,
        "max_request_size": 8 * 1024 * 1024,
        "security_protocol": settings.security_protocol,
    }
    kwargs.update(overrides)
    return AIOKafkaProducer(**kwargs)


def make_consumer(settings: KafkaSettings, *topics: str, group_id: str | None, **overrides: Any) -> AIOKafkaConsumer:
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "client_id": settings.client_id,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_bytes": 64 * 1024 * 1024,
        "max_partition_fetch_bytes": 16 * 1024 * 1024,
        "security_protocol": settings.security_protocol,
    }
    kwargs.update(overrides)
    return AIOKafkaConsumer(*topics, **kwargs)
