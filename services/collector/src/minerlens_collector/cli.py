"""Collector commands of the ``minerlens`` CLI: capture, pod, collector run/watch."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from minerlens_core import topics
from minerlens_core.errors import CaptureError
from minerlens_core.settings import IdentitySettings, KafkaSettings
from minerlens_core.terminal import make_console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from minerlens_collector.capture import PodLabel, capture_command, capture_existing
from minerlens_collector.local_pod import LocalPod
from minerlens_collector.settings import CollectorSettings
from minerlens_collector.watch import StreamView, watch_stream

console = make_console(stderr=True)


class SourceChoice(StrEnum):
    auto = "auto"
    tracefs = "tracefs"
    strace = "strace"


class DriverChoice(StrEnum):
    cgroupfs = "cgroupfs"
    systemd = "systemd"


collector_app = typer.Typer(help="The per-node collector service.", no_args_is_help=True)
pod_app = typer.Typer(help="Emulated pods: real programs in kubelet-named cgroups.", no_args_is_help=True)


def _split_pod(pod: str) -> tuple[str, str]:
    namespace, sep, name = pod.partition("/")
    if not sep or not namespace or not name:
        msg = f"--pod must be NAMESPACE/NAME, got {pod!r}"
        raise typer.BadParameter(msg)
    return namespace, name


def capture(
    pod: Annotated[str, typer.Option(help="NAMESPACE/NAME of the emulated pod")],
    out: Annotated[Path, typer.Option("--out", "-o", help="trace file to write (.parquet)")],
    command: Annotated[list[str] | None, typer.Argument(help="program to run in the pod (after --)")] = None,
    seconds: Annotated[float, typer.Option(help="stop capturing after this long")] = 10.0,
    label: Annotated[str, typer.Option(help="miner|benign|unknown")] = "unknown",
    attach_cgroup: Annotated[Path | None, typer.Option(help="capture an existing cgroup directory")] = None,
    pid: Annotated[int | None, typer.Option(help="capture an existing process and its threads")] = None,
    source: Annotated[SourceChoice, typer.Option(help="capture source")] = SourceChoice.auto,
    driver: Annotated[DriverChoice, typer.Option(help="cgroup naming")] = DriverChoice.cgroupfs,
    cpu_limit: Annotated[float | None, typer.Option(help="CPU quota of the pod, in cores")] = None,
) -> None:
    """Capture a real program's syscalls as a pod and write a trace file."""
    namespace, name = _split_pod(pod)
    who = PodLabel(namespace, name, label=label)
    try:
        if command:
            result = capture_command(
                command,
                who,
                seconds=seconds,
                out=out,
                source_kind=source.value,
                driver=driver.value,
                cpu_limit=cpu_limit,
            )
        else:
            result = capture_existing(
                who, seconds=seconds, out=out, cgroup_dir=attach_cgroup, pid=pid, source_kind=source
            )
    except CaptureError as exc:
        console.print(f"[red]capture failed:[/] {exc}")
        raise typer.Exit(2) from None
    top = ", ".join(f"{k}={v}" for k, v in list(result.per_syscall.items())[:8])
    console.print(
        f"[green]{pod}[/]: {result.events} syscalls in {result.seconds:.1f}s "
        f"({result.events / max(result.seconds, 1e-9):,.0f}/s), lost {result.lost_events}; top: {top}"
    )
    console.print(f"wrote {result.path}")


@pod_app.command("run")
def pod_run(
    pod: Annotated[str, typer.Argument(help="NAMESPACE/NAME")],
    command: Annotated[list[str], typer.Argument(help="program to run in the pod (after --)")],
    seconds: Annotated[float, typer.Option(help="stop the pod after this long (0 = when the program ends)")] = 0,
    driver: Annotated[DriverChoice, typer.Option(help="cgroup naming")] = DriverChoice.cgroupfs,
    cpu_limit: Annotated[float | None, typer.Option(help="CPU quota in cores")] = None,
) -> None:
    """Run a program as an emulated pod (no capture: a running collector finds it like a kubelet pod)."""
    namespace, name = _split_pod(pod)
    # SIGTERM must unwind through the context manager so the pod's processes and cgroups go away
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with LocalPod(namespace, name, driver=driver.value, cpu_limit=cpu_limit) as p:
        spawned = p.spawn(command, stdout=None, stderr=None)
        typer.echo(
            json.dumps(
                {
                    "pod": pod,
                    "uid": p.uid,
                    "container_id": p.container_id,
                    "pid": spawned.pid,
                    "cgroup": p.cgroup_path,
                }
            )
        )
        sys.stdout.flush()
        deadline = time.monotonic() + seconds if seconds > 0 else float("inf")
        try:
            while spawned.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass


@collector_app.command("replay")
def collector_replay(
    files: Annotated[list[Path], typer.Argument(help="canonical trace files (minerlens import / lab output)")],
    node: Annotated[str, typer.Option(help="node name the batches claim")] = "replay-node",
    speed: Annotated[float, typer.Option(help="pace by event time (1 = real time, 0 = as fast as possible)")] = 0.0,
    now: Annotated[bool, typer.Option(help="shift timestamps so the replay starts now")] = True,
    topic: Annotated[str, typer.Option(help="syscall topic")] = topics.SYSCALLS,
    give_up_after: Annotated[
        float, typer.Option(help="seconds without any message acknowledged before giving up (Kafka away)")
    ] = 300.0,
) -> None:
    """Replay recorded traces as pods: the batches and resource samples a collector would have sent, to
    Kafka (source "replay"). Waits and retries while the broker is away."""
    from minerlens_core.errors import MinerlensError
    from minerlens_core.schemas import SyscallBatch
    from minerlens_core.traces import read_trace

    from minerlens_collector.replay import ReplayAborted, merge_messages, messages_from_trace, publish

    start = time.time_ns() if now else None
    per_trace = []
    for f in files:
        try:
            per_trace.append(messages_from_trace(read_trace(f), node=node, start_ns=start))
        except MinerlensError as exc:
            msg = str(exc) if str(f) in str(exc) else f"{f}: {exc}"
            console.print(f"[red]replay failed:[/] {escape(msg)}", highlight=False)
            raise typer.Exit(2) from None
    messages = merge_messages(per_trace)
    batches = [m for m in messages if isinstance(m, SyscallBatch)]
    try:
        sent = asyncio.run(publish(messages, KafkaSettings(), topic=topic, speed=speed, give_up_after_s=give_up_after))
    except ReplayAborted as exc:
        console.print(f"[red]replay aborted:[/] {escape(str(exc))}", highlight=False)
        typer.echo(json.dumps({"sent": exc.sent, "unsent": exc.unsent, "topic": topic}))
        raise typer.Exit(1) from None
    summary = {
        "messages": sent,
        "batches": len(batches),
        "resource_samples": len(messages) - len(batches),
        "syscalls": sum(len(b) for b in batches),
        "topic": topic,
    }
    typer.echo(json.dumps(summary))


@collector_app.command("run")
def collector_run(
    seconds: Annotated[float | None, typer.Option(help="stop after this long (default: until SIGTERM)")] = None,
) -> None:
    """Run the collector service (configured by MINERLENS_COLLECTOR_* / MINERLENS_KAFKA_* variables)."""
    from minerlens_collector.runner import run_collector

    c = asyncio.run(run_collector(CollectorSettings(), KafkaSettings(), IdentitySettings(), seconds=seconds))
    s = c.batcher.stats
    console.print(
        f"captured {s.events_in} events, batched {s.events_batched} in {s.batches} batches, "
        f"published {c.publisher.sent_events}, unattributed {s.unattributed}, "
        f"spool dropped {c.spool.dropped_events}"
    )


def _render(view: StreamView) -> Table:
    table = Table(
        "pod", "node", "batches", "syscalls", "rate/s", "cores", "lost", "dup", "gaps", "top syscalls (share)"
    )
    for v in sorted(view.pods.values(), key=lambda v: v.pod):
        span = ((v.last_ns or 0) - (v.first_ns or 0)) / 1e9 if v.first_ns else 0
        rate = f"{v.syscalls / span:,.0f}" if span > 0 else "-"
        top = " ".join(f"{k} {100 * c / max(v.syscalls, 1):.0f}%" for k, c in v.top.most_common(4))
        table.add_row(
            v.pod,
            v.node,
            str(v.batches),
            f"{v.syscalls:,}",
            rate,
            "-" if v.cpu_cores is None else f"{v.cpu_cores:.2f}",
            str(v.lost),
            str(v.duplicates),
            str(v.gaps),
            top,
        )
    return table


@collector_app.command("watch")
def collector_watch(
    seconds: Annotated[float, typer.Option(help="how long to watch")] = 30.0,
    from_beginning: Annotated[bool, typer.Option(help="read the topic from its start")] = False,
) -> None:
    """Print, live, what reaches Kafka per pod: batches, syscalls, rate, losses, top syscalls."""
    out = make_console(width=160)
    with Live(_render(StreamView()), console=out, refresh_per_second=2) as live:
        view = asyncio.run(
            watch_stream(
                KafkaSettings(),
                seconds=seconds,
                from_beginning=from_beginning,
                on_update=lambda v: live.update(_render(v)),
            )
        )
        live.update(_render(view))


def register(app: typer.Typer) -> None:
    app.command("capture")(capture)
    app.add_typer(pod_app, name="pod")
    app.add_typer(collector_app, name="collector")
