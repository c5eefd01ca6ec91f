"""Featurizer settings, from the environment (``MINERLENS_FEATURIZER_*``)."""

from __future__ import annotations

from pathlib import Path

from minerlens_core import topics
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FeaturizerSettings(BaseSettings):
    """How the featurizer windows streams, where it keeps state and which topics it uses.

    The feature spec (window policy and parameters) comes from ``model_dir``'s verified manifest, so the
    windows are exactly what that model was trained on; without a model the default is 1-second time
    windows (``window_seconds``).
    """

    model_config = SettingsConfigDict(env_prefix="MINERLENS_FEATURIZER_", extra="ignore")

    app_id: str = Field(default="minerlens-featurizer", min_length=1, description="Faust app id = consumer group")
    input_topic: str = topics.SYSCALLS
    output_topic: str = topics.WINDOWS
    dead_letter_topic: str = Field(default="", description="default: <input_topic>.dlq")
    model_dir: Path | None = Field(default=None, description="model artifact whose feature spec to serve")
    window_seconds: float = Field(default=1.0, gt=0, description="time window length when no model_dir is set")

    store: str = Field(default="memory://", description="table store: memory:// (tests) or rocksdb:// (production)")
    data_dir: Path = Field(default=Path(".local/featurizer"), description="Faust data directory (RocksDB files)")
    partitions: int = Field(
        default=0, ge=0, description="partitions of the input topic; 0 = ask the broker (created with 4 if missing)"
    )
    create_partitions: int = Field(default=4, ge=1, description="partitions for the input topic when it is missing")
    standby_replicas: int = Field(default=1, ge=0, description="warm standby copies of the state on other workers")
    replication_factor: int = Field(default=1, ge=1, description="of the changelog and control topics")
    session_timeout_s: float = Field(
        default=30.0, ge=3.0, description="a worker that stops heart-beating loses its partitions after this long"
    )

    watermark_grace_s: float = Field(
        default=3.0, ge=0, description="a time window closes this long (event time) after its node moved past it"
    )
    idle_timeout_s: float = Field(
        default=60.0, gt=0, description="a stream without batches for this long is flushed and its state retired"
    )
    retired_ttl_s: float = Field(
        default=6 * 3600.0, gt=0, description="how long a retired stream's window numbering is remembered"
    )
    tick_interval_s: float = Field(default=1.0, gt=0, description="timer period: watermark ticks to every partition")
    catchup_lag: int = Field(
        default=0,
        ge=0,
        description="input messages a partition may have pending and still use other partitions' watermarks",
    )

    flush_max_messages: int = Field(default=256, ge=1, description="messages per micro-batch (one vectorize call)")
    flush_max_windows: int = Field(default=2048, ge=1, description="windows per micro-batch")
    flush_max_delay_s: float = Field(default=0.05, gt=0, description="longest a message waits for its micro-batch")
    segment_max_events: int = Field(default=32_768, ge=1, description="events per state segment (changelog message)")

    max_batch_events: int = Field(default=1_000_000, ge=1, description="larger batches are dead-lettered")
    min_event_ns: int = Field(default=946_684_800 * 10**9, ge=0, description="earlier timestamps are impossible")
    max_future_s: float = Field(default=86_400.0, gt=0, description="timestamps this far after now are impossible")

    stall_timeout_s: float = Field(
        default=60.0, gt=0, description="/healthz fails when input waits and none was handled for this long"
    )
    shutdown_timeout_s: float = Field(
        default=20.0, gt=0, description="after SIGTERM/SIGINT the worker exits within this long, stopped or not"
    )

    web_enabled: bool = True
    web_bind: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=0, le=65535, description="/metrics, /healthz, /readyz; 0 = any free port")
    log_level: str = "info"

    @property
    def dlq_topic(self) -> str:
        return self.dead_letter_topic or topics.dead_letter(self.input_topic)

    @property
    def control_topic(self) -> str:
        """Internal topic: watermark ticks and node-wide drop reports, one copy per partition."""
        return f"{self.app_id}-control"

    @property
    def state_table(self) -> str:
        return "streams"
