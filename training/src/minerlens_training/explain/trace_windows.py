"""Trace files of any importer format as the windows a model scores, and the model's inputs for them.

The file goes through ``minerlens import``'s machinery (``import_files``: strace, perf, sysdig/lid-ds,
tetragon, names, parquet), is cut by the model's own ``FeatureSpec`` window policy (from its manifest)
with ``windows_from_trace``, and turned into feature vectors (``vectorize_many``) or syscall-id
sequences (``window_sequence`` + ``pad_sequences``) — the same code training and the featurizer use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
from minerlens_core.errors import TraceFormatError
from minerlens_core.features import (
    FeatureSpec,
    Window,
    WindowPolicy,
    vectorize_many,
    window_sequence,
    windows_from_trace,
)
from minerlens_core.models import ArtifactManifest
from minerlens_core.models.onnx_model import pad_sequences
from minerlens_core.schemas.windows import window_id
from minerlens_core.syscalls import Arch
from minerlens_core.traces import TraceMeta
from minerlens_core.traces.importers import ImportResult, import_files


def policy_tag(policy: WindowPolicy) -> str:
    """``time:1s`` / ``count:1000/1000`` (the tag window ids carry)."""
    if policy.kind == "time":
        return f"time:{policy.seconds:g}s"
    return f"count:{policy.size}/{policy.stride}"


def iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class TraceWindows:
    """The windows of one trace file under one feature spec, in trace order (stream by stream)."""

    file: Path
    meta: TraceMeta
    spec: FeatureSpec
    windows: list[Window]
    malformed_lines: int

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def tag(self) -> str:
        return policy_tag(self.spec.window)

    def window_id(self, i: int) -> str:
        w = self.windows[i]
        return window_id(w.pod_uid, w.container_id, self.tag, w.index)

    def features(self) -> npt.NDArray[np.float32]:
        return vectorize_many(self.windows, self.spec)

    def sequences(self, length: int) -> npt.NDArray[np.int64]:
        return pad_sequences([window_sequence(w, self.spec.params, length) for w in self.windows], length)

    def inputs(self, manifest: ArtifactManifest) -> npt.NDArray[np.generic]:
        """What the model of ``manifest`` takes for these windows."""
        if manifest.input_kind == "sequence":
            return self.sequences(int(manifest.sequence_length or 0))
        return self.features()

    def streams(self) -> list[list[int]]:
        """Window positions grouped by (pod, container) stream, each in window order."""
        groups: dict[tuple[str, str], list[int]] = {}
        for i, w in enumerate(self.windows):
            groups.setdefault(w.key, []).append(i)
        return list(groups.values())


def cut_windows(
    path: Path, result: ImportResult, spec: FeatureSpec, *, what: str = "trace", hint: str = ""
) -> TraceWindows:
    """The windows of an imported trace under ``spec``; ``TraceFormatError`` when the policy cannot cut it
    (``what`` names the trace in the message, ``hint`` follows it)."""
    if spec.window.kind == "time" and not result.meta.has_time:
        msg = (
            f"{path}: the model cuts {spec.window.seconds:g}-second time windows but this {what} has no "
            f"timestamps{hint}"
        )
        raise TraceFormatError(msg)
    try:
        windows = list(windows_from_trace(result.table, spec.window))
    except ValueError as exc:
        msg = f"{path}: {exc}"
        raise TraceFormatError(msg) from None
    return TraceWindows(Path(path), result.meta, spec, windows, len(result.malformed))


def read_windows(path: Path, fmt: str, spec: FeatureSpec, *, arch: Arch | None = None) -> TraceWindows:
    """Import ``path`` (format ``fmt``) and cut it into the windows of ``spec``; ``TraceFormatError`` if impossible."""
    result = import_files([path], fmt, arch=arch)
    return cut_windows(path, result, spec, what=f"{fmt} trace", hint="; score it with a count-window model")
