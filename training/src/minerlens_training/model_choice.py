"""Which model scores a trace file: the time-window model when the trace has timestamps, the count-window model
when it has none (strace without ``-t``, ``names`` files, most public syscall datasets).

A *models directory* holds ``default`` (the time-window model the services serve) and ``count`` (the
count-window model trained on the order-only view of the same lab data). Each is verified and classified
by the window policy of its own feature spec, not by its name, so a directory whose ``default`` is a
count model still works. ``ModelLibrary.choose`` says what it picked and why.

``trace_windows`` imports a file once (``import_files``: any importer format, or parquet) and cuts it
with the chosen model's window policy (``explain.trace_windows.cut_windows``, the second step of
``read_windows``, which imports and cuts in one call and so cannot look at the trace before the model is chosen).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from minerlens_core.errors import MinerlensError
from minerlens_core.features import FeatureSpec
from minerlens_core.models import MANIFEST, VerifiedManifest
from minerlens_core.models.onnx_model import OnnxModel
from minerlens_core.syscalls import Arch
from minerlens_core.traces.importers import ImportResult, import_files

from minerlens_training.explain.trace_windows import TraceWindows, cut_windows, policy_tag

TIME_MODEL = "default"
COUNT_MODEL = "count"
Kind = Literal["time", "count"]


class ModelChoiceError(MinerlensError):
    """No model in the directory fits the trace (or the directory holds no model)."""


@dataclass(frozen=True)
class Choice:
    model: OnnxModel
    directory: Path
    kind: Kind
    reason: str

    @property
    def tag(self) -> str:
        return policy_tag(self.model.spec.window)

    def as_json(self) -> dict[str, str]:
        return {"directory": str(self.directory), "window_policy": self.tag, "reason": self.reason}


class ModelLibrary:
    """The ``default`` and ``count`` models of a models directory, loaded when first chosen."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._kinds: dict[Path, Kind] = {}
        for name in (TIME_MODEL, COUNT_MODEL):
            d = self.directory / name
            if (d / MANIFEST).is_file():
                self._kinds[d] = "time" if VerifiedManifest(d).spec.window.kind == "time" else "count"
        if not self._kinds:
            msg = f"{self.directory}: no model artifact ({TIME_MODEL}/ or {COUNT_MODEL}/ with a {MANIFEST})"
            raise ModelChoiceError(msg)
        self._loaded: dict[Path, OnnxModel] = {}

    def _of(self, kind: Kind) -> Path | None:
        return next((d for d, k in self._kinds.items() if k == kind), None)

    def _load(self, directory: Path) -> OnnxModel:
        if directory not in self._loaded:
            self._loaded[directory] = OnnxModel(directory)
        return self._loaded[directory]

    def choose(self, has_time: bool) -> Choice:
        """The time-window model for a trace with timestamps (else the count model), the count model without."""
        time_dir, count_dir = self._of("time"), self._of("count")
        if has_time and time_dir is not None:
            return Choice(self._load(time_dir), time_dir, "time", "the trace has timestamps: time-window model")
        if has_time and count_dir is not None:
            why = f"the trace has timestamps but {self.directory} has no time-window model: count-window model"
            return Choice(self._load(count_dir), count_dir, "count", why)
        if count_dir is not None:
            return Choice(self._load(count_dir), count_dir, "count", "the trace has no timestamps: count-window model")
        msg = (
            f"the trace has no timestamps and {self.directory} has no count-window model "
            f"({self.directory / COUNT_MODEL}; train one with `minerlens train --window-count N`)"
        )
        raise ModelChoiceError(msg)


def fixed_kind(model: OnnxModel) -> Kind:
    return "time" if model.spec.window.kind == "time" else "count"


def import_trace(path: Path, fmt: str, arch: Arch | None = None) -> ImportResult:
    return import_files([path], fmt, arch=arch)


def has_time(result: ImportResult) -> bool:
    return bool(result.meta.has_time and result.table.num_rows)


def trace_windows(path: Path, result: ImportResult, spec: FeatureSpec) -> TraceWindows:
    """The windows of an imported trace under ``spec`` (``TraceFormatError`` when the policy cannot cut it)."""
    return cut_windows(path, result, spec)
