"""The runs of a lab dataset: what each ok miner/benign run of ``DIR/manifest.json`` is (``RunInfo``) and its
trace (``iter_traces``), checked against the manifest. ``minerlens_training.datasets`` turns them into windows.

``RunInfo.implementation`` is the manifest's miner implementation, or, for manifests written before that field
existed, derived from the family (``miner-xmrig`` -> ``xmrig``, any other miner family -> ``minerlens-c``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from minerlens_core.datasets.manifest import RunRecord, load_manifest
from minerlens_core.errors import TraceFormatError
from minerlens_core.traces import Trace, read_trace

from minerlens_training.errors import DatasetError

MINER = "miner"
XMRIG_FAMILY = "miner-xmrig"
C_MINERS = "minerlens-c"
_NOISE = re.compile(r"noise-(\d+)")
_VERSION = re.compile(r"-v?\d[\w.]*$")
_MAX_COMMS = 64


def implementation_of(rec: RunRecord) -> str:
    """The miner implementation of a run ("" for benign runs); derived from the family for older manifests."""
    if rec.label != MINER:
        return ""
    impl = str(getattr(rec, "implementation", "") or "")
    if impl:
        return impl
    return "xmrig" if rec.family == XMRIG_FAMILY else C_MINERS


def implementation_group(implementation: str) -> str:
    """An implementation without its version (``xmrig-6.16.0`` -> ``xmrig``): what a hold-out removes."""
    return _VERSION.sub("", implementation) or implementation


def miner_comms_of(rec: RunRecord) -> tuple[str, ...]:
    """``facts["miner_comms"]`` of a miner run: the comm names of its miner processes (hostile-safe: strings only)."""
    raw = rec.facts.get("miner_comms") if rec.label == MINER else None
    if not isinstance(raw, list):
        return ()
    return tuple(dict.fromkeys(c for c in raw[:_MAX_COMMS] if isinstance(c, str) and c))


@dataclass(frozen=True)
class RunInfo:
    """One captured run (a trace file) and where its windows are in the matrix."""

    run_id: str
    workload: str
    family: str
    label: str
    variant: str
    repeat: int
    syscalls: int
    start: int
    """first row of this run's windows in ``X``"""
    n_windows: int
    implementation: str = ""
    """miner implementation (``xmrig-6.16.0``, ``minerlens-c``...); "" for benign runs"""
    miner_comms: tuple[str, ...] = ()
    """comm names of the miner's processes (process windows of other processes are benign)"""
    seconds: float = 0.0
    """capture length: the pod time this run observed (the denominator of alerts per pod-hour)"""

    @property
    def y(self) -> int:
        return int(self.label == MINER)

    @property
    def noise(self) -> int | None:
        """Injected-noise share in percent for miners (0 without a noise thread), None for benign runs."""
        if self.label != MINER:
            return None
        m = _NOISE.search(self.variant)
        return int(m.group(1)) if m else 0

    @property
    def throttled(self) -> bool:
        return self.variant.startswith("throttle-")

    @property
    def implementation_group(self) -> str:
        return implementation_group(self.implementation) if self.implementation else ""

    def window_label(self, is_process: bool, comm: str) -> int:
        """The label rule (module docstring) for one window of this run."""
        if self.label != MINER:
            return 0
        if is_process and self.miner_comms:
            return int(comm in self.miner_comms)
        return 1


def iter_traces(directory: Path) -> Iterator[tuple[RunInfo, Trace]]:
    """Each ok miner/benign run of a lab dataset with its trace, checked against the manifest
    (``RunInfo.start`` and ``n_windows`` are 0)."""
    try:
        manifest = load_manifest(directory)
    except (OSError, ValueError) as exc:
        msg = f"{directory}: not a lab dataset ({exc})"
        raise DatasetError(msg) from None
    for rec in manifest.runs:
        if rec.status != "ok" or not rec.file or rec.label not in ("miner", "benign"):
            continue
        try:
            trace = read_trace(directory / rec.file)
        except TraceFormatError as exc:
            raise DatasetError(str(exc)) from None
        meta = trace.meta
        if (meta.label, meta.workload, meta.family) != (rec.label, rec.workload, rec.family):
            msg = (
                f"{directory / rec.file}: trace says {meta.label}/{meta.workload}/{meta.family}, the manifest disagrees"
            )
            raise DatasetError(msg)
        known = [float(v) for v in (rec.seconds, meta.seconds) if v is not None and math.isfinite(v) and v > 0]
        seconds = known[0] if known else 0.0
        info = RunInfo(
            run_id=f"{rec.workload}-r{rec.repeat}",
            workload=rec.workload,
            family=rec.family,
            label=rec.label,
            variant=rec.variant,
            repeat=rec.repeat,
            syscalls=rec.syscalls,
            start=0,
            n_windows=0,
            implementation=implementation_of(rec),
            miner_comms=miner_comms_of(rec),
            seconds=float(seconds),
        )
        yield info, trace
