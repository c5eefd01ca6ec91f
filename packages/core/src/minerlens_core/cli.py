"""The ``minerlens`` command. Core commands live here; services add theirs through the
``minerlens.commands`` entry-point group (each entry is a ``register(app: typer.Typer)`` function), so
installing only one service gives only its commands and pulls only its dependencies."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import pyarrow.compute as pc
import typer
from rich.console import Console
from rich.table import Table

from minerlens_core.errors import MinerlensError
from minerlens_core.models.cli import model_app
from minerlens_core.syscalls import host_arch, parse_arch
from minerlens_core.traces import read_trace, write_trace

app = typer.Typer(
    name="minerlens",
    help="Find cryptominers hiding in Kubernetes pods from their syscalls.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
app.add_typer(model_app, name="model")


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command("import")
def import_cmd(
    files: Annotated[list[Path], typer.Argument(help="input files, concatenated in order")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="strace|perf|sysdig|lid-ds|tetragon|names")],
    out: Annotated[Path, typer.Option("--out", "-o", help="canonical trace file to write (.parquet)")],
    arch: Annotated[str, typer.Option(help="architecture of the syscall numbers")] = host_arch().value,
    label: Annotated[str, typer.Option(help="miner|benign|unknown")] = "unknown",
) -> None:
    """Convert strace, perf script, sysdig/LID-DS, Tetragon or plain-name traces to a canonical trace."""
    from minerlens_core.traces.importers import import_files

    result = import_files(files, fmt, arch=parse_arch(arch))
    meta = result.meta.model_copy(update={"label": label})
    write_trace(out, result.table, meta)
    for bad in result.malformed[:20]:
        console.print(f"[yellow]malformed[/] line {bad.line_no}: {bad.reason}: {bad.text[:80]!r}")
    if len(result.malformed) > 20:
        console.print(f"[yellow]... {len(result.malformed) - 20} more malformed lines[/]")
    console.print(f"wrote {out}: {result.table.num_rows} syscalls, {len(result.malformed)} malformed lines")


@app.command("show")
def show_cmd(
    file: Annotated[Path, typer.Argument(help="canonical trace file")],
    top: Annotated[int, typer.Option(help="how many syscalls to list")] = 10,
) -> None:
    """Summarise a trace file: metadata, pods, top syscalls."""
    trace = read_trace(file)
    t = trace.table
    console.print(trace.meta.model_dump_json(indent=2))
    table = Table("pod", "container", "syscalls", "threads", "top syscalls")
    for pod in t.column("pod_uid").unique().to_pylist():
        rows = t.filter(pc.equal(t.column("pod_uid"), pod))
        counts = sorted(rows.column("syscall").value_counts().to_pylist(), key=lambda c: -c["counts"])
        tops = ", ".join(f"{c['values']}={c['counts']}" for c in counts[:top])
        containers = ",".join(c[:12] for c in rows.column("container_id").unique().to_pylist())
        table.add_row(pod or "-", containers, str(rows.num_rows), str(len(rows.column("tid").unique())), tops)
    Console().print(table)


@app.command("watch")
def watch_cmd(
    seconds: Annotated[float, typer.Option(help="how long to watch")] = 60.0,
    from_beginning: Annotated[bool, typer.Option(help="read the topics from their start")] = False,
    summary_json: Annotated[Path | None, typer.Option(help="write the final per-pod summary here (JSON)")] = None,
    max_age: Annotated[
        float | None,
        typer.Option(help="leave out windows that ended more than this many seconds before the watch started"),
    ] = None,
) -> None:
    """Live per-pod table of verdicts and alerts (topics minerlens.verdicts.v1 and minerlens.alerts.v1)."""
    import json

    from minerlens_core.pipeline_view import run_watch, wide_console
    from minerlens_core.settings import KafkaSettings

    view = run_watch(KafkaSettings(), seconds, from_beginning, max_age)
    out = wide_console()
    if view.older:
        out.print(f"({view.older} verdicts or alerts older than --max-age {max_age:g} s not shown)", highlight=False)
    for line in view.alert_report() or ["no alert was raised"]:
        out.print(line, highlight=False, markup=False)
    if summary_json is not None:
        summary_json.write_text(json.dumps(view.summary(), indent=2) + "\n")


def _load_plugins() -> None:
    for ep in entry_points(group="minerlens.commands"):
        try:
            ep.load()(app)
        except ImportError as exc:  # a service installed without its dependencies
            logging.getLogger(__name__).debug("command group %s unavailable: %s", ep.name, exc)


def main() -> None:
    _load_plugins()
    try:
        app()
    except MinerlensError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise SystemExit(2) from None
