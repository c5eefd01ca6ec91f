"""Scorer settings, from the environment (``MINERLENS_SCORER_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from minerlens_core import topics
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

STATE_SUFFIX = ".scorer-state"
"""The state topic defaults to ``<alerts topic>.scorer-state`` (compacted, keyed by pod uid; not for consumers)."""


class ScorerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MINERLENS_SCORER_", extra="ignore")

    # models
    models_dir: Path = Field(
        default=Path("models"),
        description="directory of model artifact directories (or one artifact directory); watched for new ones",
    )
    primary_model: str = Field(
        default="",
        description="model_name of the deciding model; empty: minerlens-xgboost if served, else first feature model",
    )
    reload_interval_s: float = Field(default=5.0, ge=0, description="how often models_dir is rescanned (0: never)")
    onnx_threads: int = Field(default=1, ge=1, description="ONNX Runtime intra-op threads per model")

    # scoring
    min_syscalls: int = Field(
        default=3,
        ge=1,
        description="windows with fewer syscalls get decision insufficient_data (a quiet miner makes ~15/s)",
    )
    reasons_top: int = Field(default=5, ge=0, le=20, description="inline reasons per miner verdict")

    # alert policy
    alert_k: int = Field(default=3, ge=1, description="open an alert when k ...")
    alert_n: int = Field(default=5, ge=1, description="... of the last n scored windows of a pod are over threshold")
    resolve_m: int = Field(default=5, ge=1, description="resolve after m consecutive windows below the lower threshold")
    resolve_factor: float = Field(default=0.5, gt=0, le=1, description="lower threshold = factor x model threshold")
    quiet_timeout_s: float = Field(default=300.0, gt=0, description="resolve an alert when its pod sends no window")
    update_score_delta: float = Field(default=0.05, gt=0, description="peak score rise that warrants an Update")
    max_window_ids: int = Field(default=20, ge=1, description="window ids an alert lists (most recent)")
    explain_base_url: str = Field(default="", description="prefix of finding_info.src_url (e.g. https://explainer)")

    # kafka
    group_id: str = "minerlens-scorer"
    windows_topic: str = topics.WINDOWS
    verdicts_topic: str = topics.VERDICTS
    alerts_topic: str = topics.ALERTS
    state_topic: str = Field(
        default="",
        description="compacted: latest alert state per pod, read at restart (empty: <alerts_topic>.scorer-state)",
    )
    suppressions_topic: str = Field(
        default=topics.SUPPRESSIONS,
        description="compacted suppression rules (written by the explainer), followed from the start; empty: none",
    )
    batch_max: int = Field(default=512, ge=1, description="windows per poll (one ONNX call per model per batch)")
    poll_timeout_ms: int = Field(default=200, ge=1)
    restore_timeout_s: float = Field(default=30.0, gt=0, description="max time to rebuild open alerts at startup")
    stall_timeout_s: float = Field(
        default=60.0, gt=0, description="/healthz fails when windows wait and none was processed for this long"
    )

    # http
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=9466, ge=0, le=65535, description="0: any free port")

    @model_validator(mode="after")
    def _derived(self) -> Self:
        if self.alert_k > self.alert_n:
            msg = f"alert_k ({self.alert_k}) must be <= alert_n ({self.alert_n})"
            raise ValueError(msg)
        self.state_topic = self.state_topic or self.alerts_topic + STATE_SUFFIX
        return self

    @property
    def dead_letter_topic(self) -> str:
        return topics.dead_letter(self.windows_topic)
