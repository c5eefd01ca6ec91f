"""Settings shared by every service; each service subclasses with its own env prefix."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """How to reach Kafka. Environment: ``MINERLENS_KAFKA_BOOTSTRAP`` etc."""

    model_config = SettingsConfigDict(env_prefix="MINERLENS_KAFKA_", extra="ignore")

    bootstrap: str = Field(default="127.0.0.1:19092", description="comma-separated host:port list")
    client_id: str = "minerlens"
    compression: Literal["zstd", "lz4", "gzip", "none"] = "zstd"
    request_timeout_ms: int = Field(default=15_000, ge=1_000)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"


class IdentitySettings(BaseSettings):
    """Where this process runs: cluster and node name (the node from the downward API)."""

    model_config = SettingsConfigDict(env_prefix="MINERLENS_", extra="ignore")

    cluster: str = "default"
    node_name: str = Field(default="", description="defaults to the host name")
