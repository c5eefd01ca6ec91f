"""The dev tools' commands of the ``minerlens`` CLI: ``capture``, ``pod run``, ``collector replay`` and
``collector watch`` (``minerlens_collector.cli`` registers them next to the agent's ``collector run``)."""

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
from minerlens_core.settings import KafkaSettings
from minerlens_core.terminal import make_console, print_rows
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from minerlens_collector.tools.capture import PodLabel, capture_command, capture_existing
from minerlens_collector.tools.local_pod import LocalPod
from minerlens_collector.tools.watch import PodView, StreamView, watch_stream

console = make_console(stderr=True)


class SourceChoice(StrEnum):
    auto = "auto"
    tracefs = "tracefs"
    strace = "strace"


class DriverChoice(StrEnum):
    cgroupfs = "cgroupfs"
    systemd = "systemd"


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

    from minerlens_collector.tools.replay import ReplayAborted, merge_messages, messages_from_trace, publish

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


WATCH_COLUMNS = ["pod", "node", "batches", "syscalls", "rate/s", "cores", "lost", "dup", "gaps", "top syscalls"]
"""``collector watch``'s table; with --json one object per pod with these keys (``rate_per_s``, ``top_syscalls``:
the four most frequent syscalls and their share of the pod's syscalls, 0..1), numbers unformatted, null when
unknown"""


def _rate(v: PodView) -> float | None:
    span = ((v.last_ns or 0) - (v.first_ns or 0)) / 1e9 if v.first_ns else 0
    return v.syscalls / span if span > 0 else None


def _json_rows(view: StreamView) -> list[list[object]]:
    rows: list[list[object]] = []
    for v in sorted(view.pods.values(), key=lambda v: v.pod):
        rate, cores = _rate(v), v.cpu_cores
        top = {k: round(c / max(v.syscalls, 1), 4) for k, c in v.top.most_common(4)}
        rows.append(
            [v.pod, v.node, v.batches, v.syscalls, None if rate is None else round(rate, 1),
             None if cores is None else round(cores, 3), v.lost, v.duplicates, v.gaps, top]
        )  # fmt: skip
    return rows


def _render(view: StreamView) -> Table:
    table = Table(*WATCH_COLUMNS[:-1], "top syscalls (share)")
    for v in sorted(view.pods.values(), key=lambda v: v.pod):
        rate = _rate(v)
        top = " ".join(f"{k} {100 * c / max(v.syscalls, 1):.0f}%" for k, c in v.top.most_common(4))
        table.add_row(
            v.pod,
            v.node,
            str(v.batches),
            f"{v.syscalls:,}",
            "-" if rate is None else f"{rate:,.0f}",
            "-" if v.cpu_cores is None else f"{v.cpu_cores:.2f}",
            str(v.lost),
            str(v.duplicates),
            str(v.gaps),
            top,
        )
    return table


def collector_watch(
    seconds: Annotated[float, typer.Option(help="how long to watch")] = 30.0,
    from_beginning: Annotated[bool, typer.Option(help="read the topic from its start")] = False,
    topic: Annotated[str, typer.Option(help="syscall topic")] = topics.SYSCALLS,
    as_json: Annotated[
        bool, typer.Option("--json", help="no live table: at the end, one JSON array of the pods (for scripts)")
    ] = False,
) -> None:
    """Print, live, what reaches Kafka per pod: batches, syscalls, rate, losses, top syscalls."""
    if as_json:
        view = asyncio.run(watch_stream(KafkaSettings(), seconds=seconds, topic=topic, from_beginning=from_beginning))
        print_rows(WATCH_COLUMNS, _json_rows(view), as_json=True)
        return
    out = make_console(width=160)
    with Live(_render(StreamView()), console=out, refresh_per_second=2) as live:
        view = asyncio.run(
            watch_stream(
                KafkaSettings(),
                seconds=seconds,
                topic=topic,
                from_beginning=from_beginning,
                on_update=lambda v: live.update(_render(v)),
            )
        )
        live.update(_render(view))
