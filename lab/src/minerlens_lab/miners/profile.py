"""Measure miner workloads' syscall profiles: what docs/dataset.md's miner table is made of.

For each workload: one lab capture (tracefs, the runner's real settings: rate, busy cores, top syscalls,
shares, hash rate) and one run of the same command under ``strace -f -yy`` for the share of stratum
traffic in its syscalls (``stratum_share``). One workload at a time (2 cores)::

    python -m minerlens_lab.miners.profile --out /tmp/profile miner-randomx-2t xmrig-no-yield
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from minerlens_lab.catalog import catalog
from minerlens_lab.miners.stratum_share import stratum_share
from minerlens_lab.runner import LabOptions, default_cache_dir, run_lab
from minerlens_lab.workload import RunContext, Workload


def _pool_port(w: Workload, ctx: RunContext) -> int | None:
    """The pool port the miner was told (``-o HOST:PORT`` in its command or its pod's entrypoint script)."""
    text = " ".join(w.command(ctx))
    script = ctx.workdir / "entrypoint.sh"
    if script.exists():
        text += " " + script.read_text()
    found = re.search(r"-o '?[\d.]+:(\d+)", text)
    return int(found.group(1)) if found else None


def strace_share(w: Workload, cache_dir: Path, seconds: float, pool: tuple[str, int] | None) -> dict[str, Any]:
    """Run ``w``'s command under strace for ``seconds`` (outside any pod); its stratum share."""
    with tempfile.TemporaryDirectory(prefix="minerlens-profile-") as tmp:
        workdir = Path(tmp) / f"{w.name}-strace"
        workdir.mkdir()
        ctx = RunContext(workdir, cache_dir, seconds, pool=pool, threads=2, repeat=1)
        stop = threading.Event()
        trace = Path(tmp) / "strace.log"
        try:
            w.prepare(ctx)
            argv = ["strace", "-f", "-yy", "-qq", "-o", str(trace), "--", "timeout", "-s", "TERM", str(seconds)]
            driver = threading.Thread(target=w.drive, args=(ctx, stop), daemon=True)
            proc = subprocess.Popen(
                [*argv, *w.command(ctx)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
            )
            driver.start()
            try:
                proc.wait(timeout=seconds + 60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
                raise
            stop.set()
            driver.join(timeout=20)
            got = stratum_share(trace, _pool_port(w, ctx))
        finally:
            stop.set()
            w.cleanup(ctx)
    return {
        "strace_syscalls": got.total,
        "strace_stratum": got.stratum,
        "stratum_share": round(got.share, 4),
        "stratum_by_syscall": dict(got.stratum_by_syscall.most_common()),
    }


def profile(names: list[str], out: Path, cache_dir: Path, strace: bool = True) -> list[dict[str, Any]]:
    from minerlens_lab.pool import PoolThread

    everything = catalog()
    rows = []
    for name in names:
        w = everything[name]
        manifest = run_lab([w], LabOptions(out=out / name, repeat=1, cache_dir=cache_dir, source_kind="tracefs"))
        rec = manifest.runs[0]
        row: dict[str, Any] = {
            "workload": name,
            "implementation": w.implementation,
            "status": rec.status,
            "error": rec.error,
            "seconds": rec.seconds,
            "syscalls": rec.syscalls,
            "syscalls_per_s": rec.syscalls_per_s,
            "cpu_cores": rec.cpu_cores,
            "top_syscalls": [(t.syscall, t.count) for t in rec.top_syscalls],
            "facts": {k: v for k, v in rec.facts.items() if k != "traceback"},
        }
        if strace:
            with PoolThread(cache_dir) as pool:
                row.update(strace_share(w, cache_dir, rec.seconds or 60.0, pool.address))
        rows.append(row)
        print(json.dumps(row, default=str), flush=True)  # noqa: T201 - the tool's output
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m minerlens_lab.miners.profile", description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="+")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    ap.add_argument("--no-strace", action="store_true")
    args = ap.parse_args(argv)
    profile(args.names, args.out, args.cache_dir, strace=not args.no_strace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
