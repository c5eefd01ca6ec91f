"""Collector settings, from the environment (``MINERLENS_COLLECTOR_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from minerlens_core import topics
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CollectorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MINERLENS_COLLECTOR_", extra="ignore")

    topic: str = Field(default=topics.SYSCALLS, min_length=1, description="where syscall batches and drop reports go")
    source: Literal["auto", "ebpf", "tracefs", "strace"] = Field(
        default="auto", description="auto = eBPF (if ebpf_in_auto) when loadable, else tracefs, else strace (logged)"
    )
    ebpf_in_auto: bool = Field(
        default=False, description="let auto choose eBPF (its aggregates are not yet published to Kafka)"
    )
    ebpf_sample_budget: int = Field(default=256, ge=0, le=65_536, description="sampled events per cgroup and window")
    aggregate_interval_s: float = Field(default=1.0, gt=0, description="eBPF: aggregates read and reset this often")
    cgroup_root: Path = Path("/sys/fs/cgroup")
    proc_root: Path = Path("/proc")
    buffer_kb: int = Field(default=8192, ge=64, description="tracefs ring buffer per CPU")
    poll_timeout_s: float = Field(default=0.05, gt=0)
    reseed_interval_s: float = Field(default=1.0, gt=0, description="how often pod cgroups are rescanned")
    batch_max_events: int = Field(default=16_384, ge=1)
    batch_max_age_s: float = Field(default=1.0, gt=0)
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    drop_report_interval_s: float = Field(default=5.0, gt=0)
    sample_interval_s: float = Field(
        default=1.0, ge=0, description="resource samples per stream every this many seconds (0: none)"
    )
    fd_tagging: bool = Field(default=True, description="tag the fd argument of I/O syscalls with the fd's kind")
    include_node: bool = Field(default=False, description="report processes outside pods as pod 'node'")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=9464, ge=0, le=65535)
    k8s_enrichment: bool = False
    local_pod_registry: Path = Field(
        default=Path("/run/minerlens/pods"), description="names of emulated pods when there is no Kubernetes API"
    )
