"""SIEM exporter settings, from the environment (``MINERLENS_SIEM_*``).

The HEC token is a secret: give it as ``MINERLENS_SIEM_HEC_TOKEN`` or, better, as a mounted file named
by ``MINERLENS_SIEM_HEC_TOKEN_FILE``. With ``output=splunk-hec`` an empty or placeholder token is
refused at start-up, and so is plain ``http://`` unless ``hec_allow_insecure_http`` says otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from minerlens_core import topics
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

OutputName = Literal["ecs", "cef-syslog", "splunk-hec", "stdout", "falcosidekick", "alertmanager"]
OUTPUTS: tuple[OutputName, ...] = ("ecs", "cef-syslog", "splunk-hec", "stdout", "falcosidekick", "alertmanager")
WEBHOOK_OUTPUTS = ("falcosidekick", "alertmanager")

PLACEHOLDER_TOKENS = frozenset(
    {
        "changeme",
        "change-me",
        "changeit",
        "default",
        "token",
        "secret",
        "password",
        "splunk",
        "hec-token",
        "your-token",
        "your-hec-token",
        "<token>",
        "xxxx",
        "00000000-0000-0000-0000-000000000000",
    }
)


class SiemSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MINERLENS_SIEM_", extra="ignore")

    output: OutputName = Field(default="stdout", description="where alerts go")
    topic: str = Field(default=topics.ALERTS, description="alerts topic (OCSF Detection Findings)")
    group_id: str = Field(default="", description="consumer group; default minerlens-siem-<output>")
    max_records: int = Field(default=500, ge=1, description="messages per poll (one delivery + commit each)")
    poll_timeout_ms: int = Field(default=1000, ge=10)
    retry_backoff_initial_s: float = Field(default=1.0, gt=0, description="pause before re-reading after a failure")
    retry_backoff_max_s: float = Field(default=60.0, gt=0)
    shutdown_timeout_s: float = Field(default=10.0, gt=0, description="how long the last flush may take")
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(
        default=9466, ge=0, le=65535, description="HTTP port of /metrics, /healthz and /readyz; 0 = off"
    )
    stall_timeout_s: float = Field(
        default=60.0, gt=0, description="/healthz fails when alerts wait and none was processed for this long"
    )

    ecs_path: str = Field(default="-", description="ECS NDJSON destination: '-' = stdout, else a file (appended)")

    syslog_host: str = "127.0.0.1"
    syslog_port: int = Field(default=514, ge=1, le=65535)
    syslog_transport: Literal["udp", "tcp"] = "udp"
    syslog_facility: int = Field(default=4, ge=0, le=23, description="4 = security/authorization")
    syslog_app_name: str = "minerlens"
    syslog_hostname: str = Field(default="", description="HOSTNAME of the syslog header; default this host")
    syslog_timeout_s: float = Field(default=5.0, gt=0)
    syslog_max_udp_bytes: int = Field(default=8192, ge=480, le=65507)

    hec_url: str = Field(default="https://127.0.0.1:8088", description="HEC base URL (no path)")
    hec_token: SecretStr = SecretStr("")
    hec_token_file: Path | None = Field(default=None, description="file holding the HEC token (a mounted secret)")
    hec_index: str = Field(default="", description="Splunk index; empty = the token's default index")
    hec_source: str = "minerlens"
    hec_sourcetype: str = "ocsf:detection_finding"
    hec_host: str = Field(default="", description="HEC 'host'; default the node of the alert")
    hec_batch_max_events: int = Field(default=100, ge=1)
    hec_batch_max_bytes: int = Field(default=1_000_000, ge=1024)
    hec_flush_interval_s: float = Field(default=1.0, gt=0)
    hec_queue_max_events: int = Field(default=10_000, ge=1)
    hec_max_retries: int = Field(default=5, ge=0)
    hec_backoff_initial_s: float = Field(default=0.5, gt=0)
    hec_backoff_max_s: float = Field(default=30.0, gt=0)
    hec_timeout_s: float = Field(default=10.0, gt=0)
    hec_verify_tls: bool = True
    hec_ca_file: Path | None = None
    hec_gzip: bool = False
    hec_allow_insecure_http: bool = Field(default=False, description="allow http:// (the token travels in clear)")

    webhook_url: str = Field(
        default="", description="falcosidekick or Alertmanager base URL, e.g. http://falcosidekick:2801"
    )
    webhook_token: SecretStr = SecretStr("")
    webhook_token_file: Path | None = Field(default=None, description="file holding a bearer token (optional)")
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_max_retries: int = Field(default=3, ge=0)
    webhook_verify_tls: bool = True
    webhook_ca_file: Path | None = None

    @property
    def consumer_group(self) -> str:
        return self.group_id or f"minerlens-siem-{self.output}"

    def resolved_hec_token(self) -> str:
        if self.hec_token_file is not None:
            return self.hec_token_file.read_text().strip()
        return self.hec_token.get_secret_value().strip()

    def resolved_webhook_token(self) -> str:
        if self.webhook_token_file is not None:
            return self.webhook_token_file.read_text().strip()
        return self.webhook_token.get_secret_value().strip()

    @model_validator(mode="after")
    def _check_webhook(self) -> Self:
        if self.output not in WEBHOOK_OUTPUTS:
            return self
        scheme = self.webhook_url.split("://", 1)[0].lower() if "://" in self.webhook_url else ""
        if scheme not in ("http", "https"):
            msg = f"output {self.output} needs MINERLENS_SIEM_WEBHOOK_URL (http or https), got {self.webhook_url!r}"
            raise ValueError(msg)
        try:
            self.resolved_webhook_token()
        except OSError as exc:
            msg = f"cannot read the webhook token file {self.webhook_token_file}: {exc.strerror or exc}"
            raise ValueError(msg) from None
        return self

    @model_validator(mode="after")
    def _check_hec(self) -> Self:
        if self.output != "splunk-hec":
            return self
        if self.hec_token_file is not None and self.hec_token.get_secret_value():
            msg = "set MINERLENS_SIEM_HEC_TOKEN or MINERLENS_SIEM_HEC_TOKEN_FILE, not both"
            raise ValueError(msg)
        try:
            token = self.resolved_hec_token()
        except OSError as exc:
            msg = f"cannot read the HEC token file {self.hec_token_file}: {exc.strerror or exc}"
            raise ValueError(msg) from None
        if not token:
            msg = "output splunk-hec needs a HEC token (MINERLENS_SIEM_HEC_TOKEN or MINERLENS_SIEM_HEC_TOKEN_FILE)"
            raise ValueError(msg)
        if token.lower() in PLACEHOLDER_TOKENS:
            msg = "the HEC token is a placeholder/default value; set the real token"
            raise ValueError(msg)
        if any(not c.isprintable() or c.isspace() for c in token):
            msg = "the HEC token contains whitespace or control characters"
            raise ValueError(msg)
        if self.max_records > self.hec_queue_max_events:
            msg = "max_records must not exceed hec_queue_max_events (a poll would overflow the HEC queue)"
            raise ValueError(msg)
        scheme = self.hec_url.split("://", 1)[0].lower() if "://" in self.hec_url else ""
        if scheme not in ("http", "https"):
            msg = f"hec_url must be an http(s) URL, got {self.hec_url!r}"
            raise ValueError(msg)
        if scheme == "http" and not self.hec_allow_insecure_http:
            msg = "hec_url is plain http: the token would travel in clear; use https or set hec_allow_insecure_http"
            raise ValueError(msg)
        return self
