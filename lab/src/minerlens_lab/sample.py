"""Cut a small, committable sample out of a lab dataset: from every successful run, a contiguous
slice of at most N syscalls taken from the middle of the run (steady state, not start-up), with the
resource samples of the slice's time span and the one just before and after it (so every window of the
slice is bracketed by samples, as in the full trace)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from minerlens_core.datasets.manifest import load_manifest, top_syscalls, write_manifest
from minerlens_core.digests import sha256_file
from minerlens_core.traces import StreamSample, read_trace, write_trace


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
        write_trace(
            dst / run.file, table, meta, _samples_of_slice(trace.resources, table, offset == 0 and n <= max_syscalls)
        )
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


def _samples_of_slice(samples: list[StreamSample], table: pa.Table, whole: bool) -> list[StreamSample]:
    """The samples within the slice's span, plus the last one before and the first one after it, per stream."""
    if whole or not samples:
        return list(samples)
    ts = table.column("ts_ns")
    if table.num_rows == 0 or ts.null_count:
        return []
    lo, hi = ts[0].as_py(), ts[table.num_rows - 1].as_py()
    keep: list[StreamSample] = []
    streams: dict[tuple[str, str], list[StreamSample]] = {}
    for s in samples:
        streams.setdefault((s.pod_uid, s.container_id), []).append(s)
    for group in streams.values():
        group.sort(key=lambda s: s.sample.ts_ns)
        inside = [i for i, s in enumerate(group) if lo <= s.sample.ts_ns <= hi]
        before = [i for i, s in enumerate(group) if s.sample.ts_ns < lo][-1:]
        after = [i for i, s in enumerate(group) if s.sample.ts_ns > hi][:1]
        keep += [group[i] for i in before + inside + after]
    return sorted(keep, key=lambda s: s.sample.ts_ns)
