"""Responder settings, from the environment (``MINERLENS_RESPONDER_*``)."""

from __future__ import annotations

from pathlib import Path

from minerlens_core import topics
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from minerlens_responder.audit import AUDIT_TOPIC
from minerlens_responder.policy import Mode


class ResponderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MINERLENS_RESPONDER_", extra="ignore")

    policy_file: Path = Field(default=Path("/etc/minerlens/responder/policy.yaml"), description="the policy (YAML)")
    mode: Mode | None = Field(
        default=None, description="overrides the policy's mode; unset = the policy's (whose default is dry-run)"
    )
    alerts_topic: str = topics.ALERTS
    audit_topic: str = AUDIT_TOPIC
    group_id: str = "minerlens-responder"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=9468, ge=0, le=65535)
    kubeconfig: Path | None = Field(default=None, description="default: in-cluster when KUBERNETES_SERVICE_HOST is set")
    own_namespace: str = Field(
        default="minerlens", description="the namespace minerlens runs in: never acted on (downward API)"
    )
    request_timeout_s: float = Field(default=10.0, gt=0)
    poll_timeout_ms: int = Field(default=500, ge=10)
    stall_timeout_s: float = Field(
        default=60.0, gt=0, description="/healthz fails when alerts wait and none was processed for this long"
    )
