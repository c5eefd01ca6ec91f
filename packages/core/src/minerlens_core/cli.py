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

from minerlens_core.errors import MinerlensError
from minerlens_core.logs import configure_logging
from minerlens_core.models.cli import model_app
from minerlens_core.syscalls import host_arch, parse_arch
from minerlens_core.terminal import JsonOpt, make_console, print_rows
from minerlens_core.traces import read_trace, write_trace

app = typer.Typer(
    name="minerlens",
    help="Find cryptominers hiding in Kubernetes pods from their syscalls.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = make_console(stderr=True)
app.add_typer(model_app, name="model")


EXIT_CODES = {
    0: "success",
    1: "the command ran and found a problem (a check failed, a verification mismatched, a run failed)",
    2: "usage error: a bad option or argument, an unreadable input, a refused model or trace",
    130: "interrupted (Ctrl-C / SIGINT)",
}
"""what ``minerlens`` exits with (docs/cli.md); a service stopped by SIGTERM exits 0 after draining"""


def versions() -> dict[str, str]:
    """Installed minerlens distributions and their versions (core always; services, lab, training if present)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in (
        "minerlens-core", "minerlens-collector", "minerlens-featurizer", "minerlens-scorer", "minerlens-explainer",
        "minerlens-siem", "minerlens-responder", "minerlens-lab", "minerlens-training",
    ):  # fmt: skip
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def _print_version(value: bool) -> None:
    if not value:
        return
    from minerlens_core.features import FEATURE_VERSION
    from minerlens_core.schemas.envelope import SCHEMA_VERSION

    v = versions()
    typer.echo(f"minerlens {v.get('minerlens-core', '?')}")
    for dist, ver in v.items():
        if dist != "minerlens-core":
            typer.echo(f"  {dist} {ver}")
    typer.echo(f"  contract schema_version {SCHEMA_VERSION}, feature version {FEATURE_VERSION}")
    raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="print the versions and exit"),
    ] = False,
) -> None:
    """Logs: MINERLENS_LOG_FORMAT=json for JSON lines (same fields in every service), MINERLENS_LOG_LEVEL."""
    try:
        configure_logging(ctx.invoked_subcommand or "minerlens", verbose=verbose)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


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
    as_json: JsonOpt = False,
) -> None:
    """Summarise a trace file: metadata, pods, top syscalls."""
    trace = read_trace(file)
    t = trace.table
    if not as_json:
        console.print(trace.meta.model_dump_json(indent=2))
    rows = []
    for pod in t.column("pod_uid").unique().to_pylist():
        part = t.filter(pc.equal(t.column("pod_uid"), pod))
        counts = sorted(part.column("syscall").value_counts().to_pylist(), key=lambda c: -c["counts"])
        tops = ", ".join(f"{c['values']}={c['counts']}" for c in counts[:top])
        containers = ",".join(c[:12] for c in part.column("container_id").unique().to_pylist())
        rows.append([pod or "-", containers, part.num_rows, len(part.column("tid").unique()), tops])
    print_rows(["pod", "container", "syscalls", "threads", "top syscalls"], rows, as_json=as_json)


@app.command("watch")
def watch_cmd(
    seconds: Annotated[float, typer.Option(help="how long to watch")] = 60.0,
    from_beginning: Annotated[bool, typer.Option(help="read the topics from their start")] = False,
    summary_json: Annotated[Path | None, typer.Option(help="write the final per-pod summary here (JSON)")] = None,
    max_age: Annotated[
        float | None,
        typer.Option(help="leave out windows that ended more than this many seconds before the watch started"),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="no live table: at the end, one JSON array of the pods' rows (for scripts)"),
    ] = False,
) -> None:
    """Live per-pod table of verdicts and alerts (topics minerlens.verdicts.v1 and minerlens.alerts.v1)."""
    import json

    from minerlens_core.pipeline_view import COLUMNS, run_watch, wide_console
    from minerlens_core.settings import KafkaSettings

    view = run_watch(KafkaSettings(), seconds, from_beginning, max_age, live=not as_json)
    if as_json:
        print_rows(COLUMNS, view.rows(), as_json=True)
    out = console if as_json else wide_console()  # with --json, stdout holds only the JSON
    if view.older:
        out.print(f"({view.older} verdicts or alerts older than --max-age {max_age:g} s not shown)", highlight=False)
    for line in view.alert_report() or ["no alert was raised"]:
        out.print(line, highlight=False, markup=False)
    if summary_json is not None:
        summary_json.write_text(json.dumps(view.summary(), indent=2) + "\n")


SERVICES = ("collector", "featurizer", "scorer", "explainer", "siem", "responder")


@app.command("serve")
def serve_cmd() -> None:
    """Run the service named by MINERLENS_SERVICE (the image's default command): `minerlens <service> run`."""
    import os
    import sys

    service = os.environ.get("MINERLENS_SERVICE", "")
    if service not in SERVICES:
        console.print(f"[red]error:[/] MINERLENS_SERVICE must be one of {', '.join(SERVICES)}, not {service!r}")
        raise typer.Exit(2)
    os.execvp(sys.argv[0], [sys.argv[0], service, "run"])  # noqa: S606 - this very command, a fixed argument list


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
    except KeyboardInterrupt:
        raise SystemExit(130) from None
