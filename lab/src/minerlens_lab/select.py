"""Select runs of a lab dataset into a new one: the runs a later capture supersedes are left out, so a
model is trained on one consistent capture of each workload (``minerlens lab select``).

Trace files are hard-linked (copied where the filesystem cannot link); the manifest keeps every chosen
run as it was (its sha256 still verifies) and records where they came from and the patterns used.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from minerlens_core.datasets.manifest import load_manifest, write_manifest

from minerlens_lab.catalog import matches, patterns


def select_runs(src: Path, dst: Path, workloads: str | None = None, exclude: str | None = None) -> int:
    """Write the runs of ``src`` whose workload matches ``workloads`` (all when empty) and not ``exclude``
    (globs on name or family, or a label) into ``dst``; returns the number of runs kept."""
    manifest = load_manifest(src)
    keep_pats, drop_pats = patterns(workloads), patterns(exclude)
    runs = [
        r
        for r in manifest.runs
        if matches(keep_pats, r.workload, r.family, r.label)
        and not (drop_pats and matches(drop_pats, r.workload, r.family, r.label))
    ]
    for run in runs:
        if not run.file:
            continue
        target = dst / run.file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(src / run.file, target)
        except OSError:
            shutil.copy2(src / run.file, target)
    chosen = {"source": str(src), "workloads": workloads or "", "exclude": exclude or ""}
    options = {**manifest.options, "select": chosen}
    write_manifest(dst, manifest.model_copy(update={"runs": runs, "options": options}))
    return len(runs)
