"""The capture-source contract and the automatic choice between eBPF, tracefs and strace."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from minerlens_collector.events import RawEvents

log = logging.getLogger(__name__)

SourceKind = Literal["auto", "ebpf", "tracefs", "strace"]


class EventSource(Protocol):
    """A live syscall source scoped to a set of tasks (it follows their forks)."""

    name: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def add_pids(self, pids: Iterable[int]) -> None: ...
    def poll(self, timeout_s: float) -> RawEvents: ...
    def loss_delta(self) -> dict[int, int]: ...


@dataclass(frozen=True)
class SourceChoice:
    source: EventSource
    reason: str  # why this source: logged, in /healthz and in the minerlens_collector_source metric


def _ebpf(cgroup_root: Path, sample_budget: int) -> EventSource:
    from minerlens_collector.agent.ebpf import EbpfSource

    src = EbpfSource(cgroup_root, sample_budget=sample_budget)
    src.start()  # loaded and attached now: a kernel that refuses says so here, not in the service loop
    return src


def choose_source(
    kind: SourceKind,
    *,
    instance: str,
    buffer_kb: int,
    cgroup_root: Path = Path("/sys/fs/cgroup"),
    ebpf_in_auto: bool = False,
    ebpf_sample_budget: int = 256,
) -> SourceChoice:
    """The requested source; ``auto`` takes eBPF (when ``ebpf_in_auto``) where the kernel loads it, else
    tracefs, else strace, and says why it passed over each better one."""
    from minerlens_collector.agent.tracefs import TracefsSource, is_available

    if kind == "ebpf":
        return SourceChoice(_ebpf(cgroup_root, ebpf_sample_budget), "requested")
    if kind == "tracefs":
        return SourceChoice(TracefsSource(instance, buffer_kb=buffer_kb), "requested")
    if kind == "strace":
        from minerlens_collector.agent.strace_source import StraceSource

        return SourceChoice(StraceSource(), "requested")
    passed: list[str] = []
    if ebpf_in_auto:
        from minerlens_collector.agent.ebpf import BpfError, probe

        why = probe(cgroup_root)
        if why is None:
            try:
                return SourceChoice(_ebpf(cgroup_root, ebpf_sample_budget), "auto: the kernel loads the eBPF program")
            except BpfError as e:
                why = str(e)
        passed.append(f"eBPF unusable ({why})")
    else:
        passed.append("eBPF not tried (MINERLENS_COLLECTOR_EBPF_IN_AUTO=false: aggregates are not yet published)")
    if is_available():
        return SourceChoice(TracefsSource(instance, buffer_kb=buffer_kb), "auto: " + "; ".join(passed))
    from minerlens_collector.agent.strace_source import StraceSource

    passed.append("tracefs unusable (not mounted, or no permission)")
    log.warning(
        "falling back to strace: %s. strace is 10-100x slower and slows the traced programs; "
        "mount tracefs (or allow BPF) for production use.",
        "; ".join(passed),
    )
    return SourceChoice(StraceSource(), "auto: " + "; ".join(passed))


def open_source(kind: SourceKind, *, instance: str, buffer_kb: int) -> EventSource:
    """The requested source (``choose_source`` without the reason; eBPF only when asked for by name)."""
    return choose_source(kind, instance=instance, buffer_kb=buffer_kb).source
