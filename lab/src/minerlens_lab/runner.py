"""The lab runner: every selected workload x repeat, captured as a pod into ``DIR/traces``, with a manifest.

A *plan* lists the runs first: each workload's ``repeats`` and capture ``seconds`` (or the runner's
defaults, or the options' overrides), so that the total is known, printed and turned into an ETA as the
runs go. Per run: requirements (missing -> ``skipped``), ``prepare``, capture (``capture_command``; its
``on_start`` starts ``drive`` in a thread, stopped ``stop_margin`` before the end), ``check``,
``cleanup``. A failing run is recorded (``failed`` + error) and the others go on. The pod's processes
and cgroups are removed by the capture, the drive's processes when ``stop`` is set, the run's work
directory afterwards - also on an exception or Ctrl-C. The manifest is rewritten after every run, so an
interrupted dataset can be resumed (``LabOptions.resume``): ok runs whose trace still verifies are kept,
the rest are run again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from minerlens_collector.tools.capture import CaptureResult, PodLabel, capture_command
from minerlens_collector.tools.local_pod import LocalPod
from minerlens_core.datasets.manifest import (
    Manifest,
    RunRecord,
    reusable_runs,
    top_syscalls,
    trace_files,
    trace_name,
    write_manifest,
)
from minerlens_core.digests import sha256_file

from minerlens_lab import environment
from minerlens_lab.drive import drive_window
from minerlens_lab.requirements import missing_requirements
from minerlens_lab.workload import RunContext, Workload

log = logging.getLogger(__name__)

DRIVE_JOIN_S = 15.0
DEFAULT_REPEATS = 2
"""runs per workload when neither the options nor the workload say"""
DEFAULT_SECONDS = 20.0
"""capture length of a benign run when neither the options nor the workload say"""
DEFAULT_MINER_SECONDS = 60.0
"""capture length of a miner run: long enough for a share and a job at a realistic pool's pace"""
RUN_OVERHEAD_S = 2.0
"""planning estimate of each run's time outside the capture (prepare, pod set-up, check, clean-up)"""


def default_cache_dir() -> Path:
    """``$MINERLENS_LAB_CACHE``, else ``$XDG_CACHE_HOME/minerlens/lab`` (``~/.cache/minerlens/lab``)."""
    if env := os.environ.get("MINERLENS_LAB_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "minerlens" / "lab"


@dataclass
class LabOptions:
    out: Path
    seconds: float | None = None
    """capture length of every run (None: the workload's ``seconds``, else ``DEFAULT_SECONDS`` /
    ``DEFAULT_MINER_SECONDS``)"""
    miner_seconds: float | None = None
    """capture length of miner runs, which make only ~20-1000 syscalls/s (None: as ``seconds``)"""
    repeat: int | None = None
    """runs of every workload (None: the workload's ``repeats``, else ``DEFAULT_REPEATS``)"""
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    cache_dir: Path = field(default_factory=default_cache_dir)
    source_kind: str = "auto"
    pattern: str | None = None
    """only recorded in the manifest: the selection the workloads came from"""
    resume: bool = False
    """continue the dataset in ``out``: keep its ok runs whose trace verifies, run the rest"""


@dataclass(frozen=True)
class PlannedRun:
    workload: Workload
    repeat: int
    seconds: float
    """planned capture length"""
    missing: tuple[str, ...] = ()
    """requirements this machine lacks (the run will be recorded as skipped)"""

    @property
    def key(self) -> tuple[str, int]:
        return (self.workload.name, self.repeat)

    @property
    def planned_s(self) -> float:
        """Expected wall-clock time of the run (0 when it will be skipped)."""
        return 0.0 if self.missing else self.seconds + RUN_OVERHEAD_S


def run_seconds(w: Workload, opts: LabOptions) -> float:
    """The capture length of ``w``'s runs: the options' override, else the workload's, else the default."""
    if w.label == "miner" and opts.miner_seconds:
        return opts.miner_seconds
    if opts.seconds:
        return opts.seconds
    if w.seconds:
        return w.seconds
    return DEFAULT_MINER_SECONDS if w.label == "miner" else DEFAULT_SECONDS


def run_repeats(w: Workload, opts: LabOptions) -> int:
    return opts.repeat or w.repeats or DEFAULT_REPEATS


def plan_runs(workloads: Sequence[Workload], opts: LabOptions) -> list[PlannedRun]:
    """Every run of a lab run, in order: each workload's repeats one after the other."""
    out: list[PlannedRun] = []
    for w in workloads:
        missing = tuple(missing_requirements(w))
        for k in range(1, run_repeats(w, opts) + 1):
            out.append(PlannedRun(w, k, run_seconds(w, opts), missing))
    return out


@dataclass
class Progress:
    """Where a lab run stands, for progress output: run ``index`` of ``total`` (1-based)."""

    index: int
    total: int
    elapsed_s: float
    """wall-clock seconds since the lab run started"""
    eta_s: float
    """estimated seconds until the whole lab run ends"""
    planned_s: float
    """the plan's estimate of the whole lab run (of the runs to do), made before the first run"""


@dataclass
class EtaClock:
    """Turns the plan's expected run times into an ETA, scaled by how long the finished runs really took."""

    remaining_s: float
    """planned seconds of the runs not finished yet"""
    planned_total_s: float = 0.0
    started: float = field(default_factory=time.monotonic)
    planned_done_s: float = 0.0
    spent_s: float = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def done(self, run: PlannedRun, took_s: float) -> None:
        self.remaining_s = max(0.0, self.remaining_s - run.planned_s)
        self.planned_done_s += run.planned_s
        self.spent_s += took_s

    def __post_init__(self) -> None:
        self.planned_total_s = self.planned_total_s or self.remaining_s

    def eta(self) -> float:
        """The remaining planned time scaled by the pace measured so far (real / planned time of the
        finished runs, bounded to 0.5-3 so that one odd run does not swing it wildly)."""
        ratio = 1.0
        if self.planned_done_s > 0 and self.spent_s > 0:
            ratio = min(3.0, max(0.5, self.spent_s / self.planned_done_s))
        return self.remaining_s * ratio

    def progress(self, index: int, total: int) -> Progress:
        return Progress(index, total, self.elapsed(), self.eta(), self.planned_total_s)


@dataclass
class RunHooks:
    """Progress callbacks (the CLI's progress output)."""

    planned: Callable[[list[PlannedRun], float, int], None] = lambda runs, total_s, kept: None
    """before the first run: the runs to do, their planned total seconds, and how many ok runs were kept
    from the dataset being resumed (they are not in the runs to do)"""
    started: Callable[[PlannedRun, Progress], None] = lambda run, p: None
    finished: Callable[[RunRecord, Progress], None] = lambda record, p: None


def new_manifest(workloads: Sequence[Workload], opts: LabOptions) -> Manifest:
    return Manifest(
        created_at=datetime.now(UTC),
        minerlens_version=_version(),
        machine=environment.machine(),
        tool_versions=environment.tool_versions(r for w in workloads for r in w.requires),
        python_versions=environment.python_versions(),
        options={
            "seconds": opts.seconds,
            "miner_seconds": opts.miner_seconds,
            "repeat": opts.repeat,
            "default_seconds": DEFAULT_SECONDS,
            "default_miner_seconds": DEFAULT_MINER_SECONDS,
            "default_repeats": DEFAULT_REPEATS,
            "threads": opts.threads,
            "workloads": opts.pattern or "",
            "source": opts.source_kind,
        },
    )


def run_lab(workloads: Sequence[Workload], opts: LabOptions, hooks: RunHooks | None = None) -> Manifest:
    """Run every planned run of ``workloads``; return (and write, after every run) the manifest."""
    hooks = hooks or RunHooks()
    plan = plan_runs(workloads, opts)
    order = {run.key: i for i, run in enumerate(plan)}
    manifest = new_manifest(workloads, opts)
    if opts.resume:
        manifest = _resumed(manifest, opts.out, order)
    kept = {(r.workload, r.repeat) for r in manifest.runs}
    todo = [run for run in plan if run.key not in kept]
    clock = EtaClock(remaining_s=sum(run.planned_s for run in todo))
    hooks.planned(todo, clock.remaining_s, len(kept))
    write_manifest(opts.out, manifest)
    try:
        selected = list({run.workload.name: run.workload for run in todo}.values())
        with _pool_for(selected, opts.cache_dir) as pool, _work_root() as work_root:
            for i, run in enumerate(todo, start=1):
                t0 = time.monotonic()
                hooks.started(run, clock.progress(i, len(todo)))
                record = run_one(run.workload, run.repeat, opts, work_root=work_root, pool=pool, seconds=run.seconds)
                clock.done(run, time.monotonic() - t0)
                manifest.runs.append(record)
                manifest.runs.sort(key=lambda r: order.get((r.workload, r.repeat), len(order)))
                write_manifest(opts.out, manifest)
                hooks.finished(record, clock.progress(i, len(todo)))
    except KeyboardInterrupt:
        manifest.interrupted = True
        raise
    finally:
        manifest.finished_at = datetime.now(UTC)
        write_manifest(opts.out, manifest)
    return manifest


def _resumed(fresh: Manifest, out: Path, order: dict[tuple[str, int], int]) -> Manifest:
    """The dataset in ``out`` to continue: its ok runs whose trace verifies (and no other trace file)."""
    previous, kept = reusable_runs(out)
    if previous is None:
        return fresh
    for stale in trace_files(out) - {r.file for r in kept if r.file}:
        (out / stale).unlink(missing_ok=True)
    kept.sort(key=lambda r: order.get((r.workload, r.repeat), len(order)))
    options = {**fresh.options, "resumed": int(previous.options.get("resumed", 0)) + 1}
    return fresh.model_copy(update={"created_at": previous.created_at, "runs": kept, "options": options})


@dataclass
class _PoolState:
    address: tuple[str, int] | None = None
    error: str = ""


@contextlib.contextmanager
def _pool_for(workloads: Sequence[Workload], cache_dir: Path) -> Iterator[_PoolState]:
    """The loopback stratum pool, started only when a runnable miner is selected."""
    if not any(w.label == "miner" and not missing_requirements(w) for w in workloads):
        yield _PoolState()
        return
    try:
        from minerlens_lab.pool import PoolThread
    except ImportError as exc:
        yield _PoolState(error=f"the stratum pool is unavailable: {exc}")
        return
    cache_dir.mkdir(parents=True, exist_ok=True)
    with PoolThread(cache_dir) as pool:
        yield _PoolState(address=pool.address)


@contextlib.contextmanager
def _work_root() -> Iterator[Path]:
    """Per-run work directories live here; traversable by the unprivileged users servers drop to."""
    root = Path(tempfile.mkdtemp(prefix="minerlens-lab-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_one(
    w: Workload, repeat: int, opts: LabOptions, *, work_root: Path, pool: _PoolState, seconds: float | None = None
) -> RunRecord:
    """One capture of ``w`` (run number ``repeat``) for ``seconds`` (default: ``run_seconds``)."""
    record = RunRecord(
        workload=w.name,
        family=w.family,
        label=w.label,
        variant=w.variant,
        implementation=w.implementation,
        repeat=repeat,
        status="skipped",
        started_at=datetime.now(UTC),
    )
    if w.imitates:
        record.facts["imitates"] = w.imitates
    missing = missing_requirements(w)
    if missing:
        record.error = "missing: " + ", ".join(missing)
        return record
    if w.label == "miner" and pool.address is None:
        record.status, record.error = "failed", pool.error or "no stratum pool"
        return record
    workdir = work_root / f"{w.name}-r{repeat}"
    workdir.mkdir()
    workdir.chmod(0o755)
    seconds = seconds or run_seconds(w, opts)
    ctx = RunContext(workdir, opts.cache_dir, seconds, pool=pool.address, threads=opts.threads, repeat=repeat)
    opts.cache_dir.mkdir(parents=True, exist_ok=True)
    out = opts.out / trace_name(w.name, repeat)
    driver = _Driver(w, ctx)
    try:
        w.prepare(ctx)
        argv = w.command(ctx)
        record.command = argv
        result = capture_command(
            argv,
            PodLabel(f"lab-{w.label}", f"{w.name}-r{repeat}", w.label, w.name, w.family, w.variant),
            seconds=seconds,
            out=out,
            source_kind=opts.source_kind,
            cpu_limit=w.cpu_limit,
            on_start=driver.start,
        )
        driver.stop()
        _fill(record, result)
        driver.raise_error()
        if result.exit_code not in (None, 0):
            msg = f"the pod's program exited with status {result.exit_code}"
            raise RuntimeError(msg)
        if result.events == 0:
            msg = "no syscall was captured"
            raise RuntimeError(msg)
        ctx.cpu_seconds = record.cpu_seconds
        w.check(ctx)
        record.status = "ok"
        record.file = trace_name(w.name, repeat)
        record.sha256 = sha256_file(out)
    except Exception as exc:
        log.debug("%s r%d failed", w.name, repeat, exc_info=True)
        record.status = "failed"
        record.error = f"{type(exc).__name__}: {exc}".strip()[:2000]
        record.facts["traceback"] = traceback.format_exc(limit=3)[-1500:]
        out.unlink(missing_ok=True)
    except BaseException:  # Ctrl-C / SIGTERM mid-capture: no half-written trace is left behind
        out.unlink(missing_ok=True)
        raise
    finally:
        driver.stop()
        try:
            w.cleanup(ctx)
        except Exception as exc:  # noqa: BLE001 - a failed cleanup must not hide the run's result
            log.warning("%s r%d: cleanup failed: %s", w.name, repeat, exc)
        shutil.rmtree(workdir, ignore_errors=True)
        record.facts = {**ctx.facts, **record.facts}
    return record


def _fill(record: RunRecord, result: CaptureResult) -> None:
    cpus = os.cpu_count() or 1
    record.seconds = round(result.seconds, 3)
    record.syscalls = result.events
    record.lost_events = result.lost_events
    record.syscalls_per_s = round(result.events / result.seconds, 1) if result.seconds > 0 else 0.0
    record.exit_code = result.exit_code
    record.top_syscalls = top_syscalls(result.per_syscall)
    if result.cpu_ns is not None:
        cpu_s = result.cpu_ns / 1e9
        record.cpu_seconds = round(cpu_s, 3)
        cores = cpu_s / result.seconds if result.seconds > 0 else 0.0
        record.cpu_cores = round(cores, 3)
        record.cpu_share = round(cores / cpus, 3)


class _Driver:
    """Runs ``drive`` in a thread from the capture's ``on_start``; ``stop`` is set ``stop_margin``
    before the capture ends (so the load generator can report while the server still runs)."""

    def __init__(self, w: Workload, ctx: RunContext) -> None:
        self.w, self.ctx = w, ctx
        self.event = threading.Event()
        self.thread: threading.Thread | None = None
        self.timer: threading.Timer | None = None
        self.error: BaseException | None = None

    def start(self, pod: LocalPod) -> None:
        self.timer = threading.Timer(drive_window(self.ctx.seconds), self.event.set)
        self.timer.daemon = True
        self.timer.start()
        self.thread = threading.Thread(target=self._run, name=f"drive-{self.w.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.w.drive(self.ctx, self.event)
        except Exception as exc:  # noqa: BLE001 - reported by raise_error() in the runner's thread
            self.error = exc

    def stop(self) -> None:
        self.event.set()
        if self.timer is not None:
            self.timer.cancel()
        if self.thread is not None:
            self.thread.join(timeout=DRIVE_JOIN_S)
            if self.thread.is_alive():
                log.warning("%s: drive() did not return %.0fs after stop", self.w.name, DRIVE_JOIN_S)

    def raise_error(self) -> None:
        if self.error is not None:
            msg = f"drive() failed: {type(self.error).__name__}: {self.error}"
            raise RuntimeError(msg) from self.error


def _version() -> str:
    try:
        return metadata.version("minerlens-lab")
    except metadata.PackageNotFoundError:
        return "unknown"
