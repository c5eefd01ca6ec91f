"""The lab runner: every selected workload x repeat, captured as a pod into ``DIR/traces``, with a manifest.

Per run: requirements (missing -> ``skipped``), ``prepare``, capture (``capture_command``; its
``on_start`` starts ``drive`` in a thread, stopped ``stop_margin`` before the end), ``check``,
``cleanup``. A failing run is recorded (``failed`` + error) and the others go on. The pod's processes
and cgroups are removed by the capture, the drive's processes when ``stop`` is set, the run's work
directory afterwards - also on an exception or Ctrl-C. The manifest is rewritten after every run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from minerlens_collector.capture import CaptureResult, PodLabel, capture_command
from minerlens_collector.local_pod import LocalPod
from minerlens_core.digests import sha256_file

from minerlens_lab import environment
from minerlens_lab.drive import drive_window
from minerlens_lab.manifest import (
    Manifest,
    RunRecord,
    top_syscalls,
    trace_name,
    write_manifest,
)
from minerlens_lab.requirements import missing_requirements
from minerlens_lab.workload import RunContext, Workload

log = logging.getLogger(__name__)

DRIVE_JOIN_S = 15.0


def default_cache_dir() -> Path:
    """``$MINERLENS_LAB_CACHE``, else ``$XDG_CACHE_HOME/minerlens/lab`` (``~/.cache/minerlens/lab``)."""
    if env := os.environ.get("MINERLENS_LAB_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "minerlens" / "lab"


@dataclass
class LabOptions:
    out: Path
    seconds: float = 10.0
    miner_seconds: float | None = None
    """capture length for miners, which make only ~20-1000 syscalls/s (None = ``seconds``)"""
    repeat: int = 1
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    cache_dir: Path = field(default_factory=default_cache_dir)
    source_kind: str = "auto"
    pattern: str | None = None
    """only recorded in the manifest: the selection the workloads came from"""


@dataclass
class RunHooks:
    """Progress callbacks (the CLI's progress bar)."""

    started: Callable[[Workload, int], None] = lambda w, k: None
    finished: Callable[[RunRecord], None] = lambda r: None


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
            "threads": opts.threads,
            "workloads": opts.pattern or "",
            "source": opts.source_kind,
        },
    )


def run_lab(workloads: Sequence[Workload], opts: LabOptions, hooks: RunHooks | None = None) -> Manifest:
    """Run every workload ``opts.repeat`` times; return (and write) the manifest."""
    hooks = hooks or RunHooks()
    manifest = new_manifest(workloads, opts)
    write_manifest(opts.out, manifest)
    try:
        with _pool_for(workloads, opts.cache_dir) as pool, _work_root() as work_root:
            for w in workloads:
                for k in range(1, opts.repeat + 1):
                    hooks.started(w, k)
                    record = run_one(w, k, opts, work_root=work_root, pool=pool)
                    manifest.runs.append(record)
                    write_manifest(opts.out, manifest)
                    hooks.finished(record)
    except KeyboardInterrupt:
        manifest.interrupted = True
        raise
    finally:
        manifest.finished_at = datetime.now(UTC)
        write_manifest(opts.out, manifest)
    return manifest


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


def run_one(w: Workload, repeat: int, opts: LabOptions, *, work_root: Path, pool: _PoolState) -> RunRecord:
    record = RunRecord(
        workload=w.name,
        family=w.family,
        label=w.label,
        variant=w.variant,
        repeat=repeat,
        status="skipped",
        started_at=datetime.now(UTC),
    )
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
    seconds = opts.miner_seconds if w.label == "miner" and opts.miner_seconds else opts.seconds
    ctx = RunContext(workdir, opts.cache_dir, seconds, pool=pool.address, threads=opts.threads)
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
