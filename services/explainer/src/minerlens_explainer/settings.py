"""``ExplainerSettings``: everything the explainer reads from the environment (``MINERLENS_EXPLAINER_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from minerlens_core import topics
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ParamValue = str | int | float | bool


class ExplainerSettings(BaseSettings):
    """Settings of the explainer API and of its Kafka ingestion. See docs/api.md."""

    model_config = SettingsConfigDict(env_prefix="MINERLENS_EXPLAINER_", extra="ignore")

    host: str = Field(default="0.0.0.0", description="address the API listens on")  # noqa: S104 (a pod's port)
    port: int = Field(default=8080, ge=1, le=65535)
    tokens_file: Path | None = Field(
        default=None, description="bearer tokens, one 'role:token' line each (roles: read, admin); required"
    )
    models: Annotated[list[Path], NoDecode] = Field(
        default_factory=lambda: [Path("models/default")],
        description="model artifact directories (comma-separated); the first feature model is the default",
    )
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_s: float = Field(default=0.5, gt=0, description="connect/read timeout of one Redis call")
    redis_retry_s: float = Field(default=2.0, ge=0, description="after a Redis failure, skip Redis this long")
    key_prefix: str = Field(default="minerlens:explainer:", min_length=1, max_length=64)
    cache_ttl_s: int = Field(default=3600, ge=1, description="TTL of cached explanations")
    lock_ttl_ms: int = Field(default=30_000, ge=100, description="TTL of the compute lock of one explanation")
    wait_timeout_s: float = Field(default=30.0, gt=0, description="how long to wait for another replica's result")
    window_ttl_s: int = Field(default=3600, ge=1, description="a pod's windows and verdicts expire this long after")
    alert_ttl_s: int = Field(default=7 * 86400, ge=1)
    max_windows_per_pod: int = Field(default=120, ge=1, le=100_000)
    max_verdicts_per_pod: int = Field(default=600, ge=1, le=100_000)
    max_pods_listed: int = Field(default=10_000, ge=1)
    workers: int = Field(default=2, ge=1, le=64, description="threads computing explanations (per process)")
    compute_threads: int = Field(
        default=1, ge=1, le=64, description="OpenMP/BLAS threads of one explanation (parallelism is across requests)"
    )
    http_workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes")
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    metrics_public: bool = Field(default=False, description="serve /metrics without a token")
    api_docs: bool = Field(default=True, description="serve /openapi.json, /docs and /redoc (public: no data)")
    method_params: dict[str, dict[str, ParamValue]] = Field(
        default_factory=dict, description='JSON, load_explainer parameters per method: {"lime": {"num_samples": 500}}'
    )
    ingest: bool = Field(default=True, description="consume the windows/verdicts/alerts topics in the API process")
    group_id: str = "minerlens-explainer"
    stall_timeout_s: float = Field(
        default=60.0, gt=0, description="/healthz fails when messages wait and none was stored for this long"
    )
    rebuild_s: float = Field(
        default=900.0, ge=0, description="Redis lost the store: refill windows and verdicts of this long back; 0 = off"
    )
    rebuild_alerts_s: float = Field(default=86_400.0, ge=0, description="... and alerts of this long back")
    rebuild_max_messages: int = Field(default=200_000, ge=1, description="most messages one rebuild reads")
    rebuild_timeout_s: float = Field(default=120.0, gt=0, description="longest one rebuild may take")
    check_store_s: float = Field(default=10.0, gt=0, description="how often the ingestion checks the store marker")
    audit_topic: str = Field(default=topics.AUDIT, description="operator actions (suppressions, feedback) go here")
    suppressions_topic: str = Field(default=topics.SUPPRESSIONS, description="suppression rules for the scorer")
    publish_timeout_s: float = Field(default=5.0, gt=0, description="how long an operator action waits for Kafka")
    console_session_ttl_s: int = Field(default=8 * 3600, ge=60, description="a console login lasts this long")
    console_secure_cookie: bool | None = Field(
        default=None, description="Secure flag of the console cookie (default: when the request came over https)"
    )
    windows_topic: str = topics.WINDOWS
    verdicts_topic: str = topics.VERDICTS
    alerts_topic: str = topics.ALERTS

    @field_validator("models", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [Path(p.strip()) for p in value.split(",") if p.strip()]
        return value
