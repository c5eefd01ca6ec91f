"""Run one catalog workload as a live emulated pod, without capturing it.

The lab runner captures each run itself; the demo and the end-to-end tests need the opposite: the
workload runs in a kubelet-named cgroup for ``seconds`` while a node collector (a separate process)
finds and traces it like any pod. Same workload lifecycle as the runner (pool for miners, ``prepare``,
``drive`` from outside the pod, ``check``, ``cleanup``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minerlens_collector.tools.local_pod import LocalPod

from minerlens_lab.requirements import missing_requirements
from minerlens_lab.runner import _Driver, _pool_for, _work_root
from minerlens_lab.workload import RunContext, Workload

log = logging.getLogger(__name__)


@dataclass
class LivePodResult:
    namespace: str
    name: str
    uid: str
    container_id: str
    seconds: float
    exit_code: int | None
    facts: dict[str, Any] = field(default_factory=dict)


def run_live_pod(
    w: Workload,
    namespace: str,
    name: str,
    *,
    seconds: float,
    cache_dir: Path,
    threads: int = 2,
    stop: threading.Event | None = None,
    on_start: Callable[[LocalPod], None] | None = None,
) -> LivePodResult:
    """Run ``w`` in pod ``namespace/name`` for ``seconds`` (or until ``stop`` is set); clean everything up."""
    missing = missing_requirements(w)
    if missing:
        msg = f"{w.name} cannot run here: missing {', '.join(missing)}"
        raise RuntimeError(msg)
    stop = stop or threading.Event()
    with _pool_for([w], cache_dir) as pool, _work_root() as root:
        if w.label == "miner" and pool.address is None:
            msg = f"{w.name}: {pool.error or 'no stratum pool'}"
            raise RuntimeError(msg)
        workdir = root / w.name
        workdir.mkdir()
        workdir.chmod(0o755)
        cache_dir.mkdir(parents=True, exist_ok=True)
        ctx = RunContext(workdir, cache_dir, seconds, pool=pool.address, threads=threads)
        driver = _Driver(w, ctx)
        try:
            w.prepare(ctx)
            argv = w.command(ctx)
            with LocalPod(namespace, name, cpu_limit=w.cpu_limit) as pod:
                spawned = pod.spawn(argv)
                t0 = time.monotonic()
                driver.start(pod)
                if on_start is not None:
                    on_start(pod)
                while spawned.proc.poll() is None and time.monotonic() - t0 < seconds and not stop.is_set():
                    stop.wait(0.2)
                elapsed = time.monotonic() - t0
                driver.stop()
                code = spawned.proc.poll()
                result = LivePodResult(namespace, name, pod.uid, pod.container_id, elapsed, code)
            driver.raise_error()
            try:
                w.check(ctx)
            except Exception as exc:  # noqa: BLE001 - a check failure is a fact, not a crash of the demo
                ctx.facts["check_error"] = str(exc)
            result.facts = dict(ctx.facts)
            return result
        finally:
            driver.stop()
            try:
                w.cleanup(ctx)
            except Exception as exc:  # noqa: BLE001 - cleanup failures are logged, never hide the result
                log.warning("%s: cleanup failed: %s", w.name, exc)
