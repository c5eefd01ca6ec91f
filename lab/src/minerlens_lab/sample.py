"""Cut a small, committable sample out of a lab dataset: from every successful run, a contiguous
slice of at most N syscalls taken from the middle of the run (steady state, not start-up)."""

from __future__ import annotations

from pathlib import Path

from minerlens_core.digests import sha256_file
from minerlens_core.traces import read_trace, write_trace

from minerlens_lab.manifest import load_manifest, top_syscalls, write_manifest


def make_sample(src: Path, dst: Path, max_syscalls: int) -> int:
    """Write the sample dataset to ``dst`` (traces + manifest); returns the number of traces."""
    manifest = load_manifest(src)
    runs = []
    written = 0
    for run in manifest.runs:
        if run.status != "ok" or not run.file:
            runs.append(run)
            continue
        trace = read_trace(src / run.file)
        n = trace.table.num_rows
        offset = max(0, (n - max_syscalls) // 2)
        table = trace.table.slice(offset, min(max_syscalls, n))
        ts = table.column("ts_ns")
        seconds = run.seconds
        if trace.meta.has_time and table.num_rows > 1 and ts.null_count == 0:
            seconds = round((ts[table.num_rows - 1].as_py() - ts[0].as_py()) / 1e9, 3)
        cut = {"from_rows": n, "offset": offset, "rows": table.num_rows, "run_seconds": run.seconds}
        meta = trace.meta.model_copy(update={"seconds": seconds, "extra": {**trace.meta.extra, "sample": cut}})
        write_trace(dst / run.file, table, meta)
        counts = {c["values"]: c["counts"] for c in table.column("syscall").value_counts().to_pylist()}
        runs.append(
            run.model_copy(
                update={
                    "seconds": seconds,
                    "syscalls": table.num_rows,
                    "syscalls_per_s": table.num_rows / seconds if seconds else 0.0,
                    "top_syscalls": top_syscalls(counts),
                    "sha256": sha256_file(dst / run.file),
                    "facts": {**run.facts, "sample": cut},
                }
            )
        )
        written += 1
    options = {**manifest.options, "sample": {"source": str(src), "max_syscalls": max_syscalls, "slice": "middle"}}
    write_manifest(dst, manifest.model_copy(update={"runs": runs, "options": options}))
    return written
