"""``minerlens score --models DIR`` picks, per file, the time-window model (``DIR/default``) for a trace with
timestamps and the count-window model (``DIR/count``, trained with ``minerlens train --window-count``) for an
order-only one (a real strace run without ``-t``, a ``names`` file, both through ``minerlens import``), and
says which, in the file's summary and on stderr."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from minerlens_core.cli import app as core_app
from minerlens_core.features import vectorize_many, windows_from_trace
from minerlens_core.models.onnx_model import OnnxModel
from minerlens_core.traces import read_trace
from minerlens_training.cli import app as train_app
from minerlens_training.cli_score import MODEL_ENV, register
from typer.testing import CliRunner

from tests.training.conftest import SAMPLE

needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
COUNT = 100
PROGRAM = ["/bin/sh", "-c", "ls -la /usr/bin > /dev/null; sha256sum /etc/os-release > /dev/null"]


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    root = typer.Typer()
    register(root)
    return root


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models directory with a tiny time-window tree (``default``) and a count-window tree (``count``), both
    trained by ``minerlens train`` on the committed sample."""
    out = tmp_path_factory.mktemp("models")
    runner = CliRunner()
    for name, window in (("default", ["--window-seconds", "2"]), ("count", ["--window-count", str(COUNT)])):
        args = ["train", "--data", str(SAMPLE), "--out", str(out / name), "--model", "tree", *window]
        res = runner.invoke(train_app, args)
        assert res.exit_code == 0, res.output
    assert "order-only view" in res.output
    return out


def _score(app: typer.Typer, args: list[str]) -> Any:
    return CliRunner().invoke(app, ["score", *args], env={MODEL_ENV: ""}, catch_exceptions=False)


def _summary(stdout: str) -> dict[str, Any]:
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    summary = lines[-1]
    assert summary["summary"] is True
    return summary


def _import(src: Path, fmt: str, out: Path) -> Path:
    res = CliRunner().invoke(core_app, ["import", str(src), "--format", fmt, "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def _strace(tmp: Path, *flags: str) -> Path:
    out = tmp / f"trace{''.join(flags)}.txt"
    subprocess.run(["strace", "-f", *flags, "-o", str(out), "--", *PROGRAM], check=True, capture_output=True)
    return out


def _assert_count_model(result: Any, models: Path, trace: Path) -> None:
    assert result.exit_code == 0, result.output
    s = _summary(result.stdout)
    assert s["model_choice"]["directory"] == str(models / "count")
    assert s["model_choice"]["window_policy"] == f"count:{COUNT}/{COUNT}"
    assert "no timestamps" in s["model_choice"]["reason"]
    assert "count-window model" in result.stderr
    assert s["windows"] >= 1
    # the scores are the count model's on the trace's count windows
    onnx = OnnxModel(models / "count")
    windows = list(windows_from_trace(read_trace(trace), onnx.spec.window))
    scores = onnx.score(vectorize_many(windows, onnx.spec))
    got = [json.loads(line)["score"] for line in result.stdout.splitlines()[:-1]]
    np.testing.assert_allclose(got, scores, atol=1e-5)


@needs_strace
def test_order_only_strace_is_scored_by_the_count_model(app: typer.Typer, models: Path, tmp_path: Path) -> None:
    trace = _import(_strace(tmp_path), "strace", tmp_path / "strace.parquet")
    assert not read_trace(trace).meta.has_time
    _assert_count_model(_score(app, ["--models", str(models), "-f", "parquet", str(trace)]), models, trace)
    # the raw strace text, without the import step: the same choice
    raw = _score(app, ["--models", str(models), "-f", "strace", str(_strace(tmp_path))])
    assert _summary(raw.stdout)["model_choice"]["window_policy"] == f"count:{COUNT}/{COUNT}"


@needs_strace
def test_timestamped_strace_is_scored_by_the_time_model(app: typer.Typer, models: Path, tmp_path: Path) -> None:
    result = _score(app, ["--models", str(models), "-f", "strace", str(_strace(tmp_path, "-ttt"))])
    assert result.exit_code == 0, result.output
    s = _summary(result.stdout)
    assert s["model_choice"]["directory"] == str(models / "default")
    assert s["model_choice"]["window_policy"] == "time:2s"
    assert "time-window model" in result.stderr


def test_names_file_and_lab_trace_in_one_call(app: typer.Typer, models: Path, tmp_path: Path) -> None:
    """A names file (the syscalls of a committed miner trace, in order, without anything else) goes to the count
    model; the timestamped lab trace it came from, in the same call, to the time model."""
    lab = SAMPLE / "traces" / "miner-cryptonight-noise-70-r1.parquet"
    names = tmp_path / "miner.names"
    names.write_text("\n".join(read_trace(lab).table.column("syscall").to_pylist()) + "\n")
    trace = _import(names, "names", tmp_path / "names.parquet")
    result = _score(app, ["--models", str(models), "-f", "parquet", str(trace), str(lab)])
    assert result.exit_code == 0, result.output
    summaries = [r for r in map(json.loads, result.stdout.splitlines()) if r.get("summary")]
    assert [Path(s["model_choice"]["directory"]).name for s in summaries] == ["count", "default"]
    assert [s["model_choice"]["window_policy"] for s in summaries] == [f"count:{COUNT}/{COUNT}", "time:2s"]
    assert f"{trace}: the trace has no timestamps" in result.stderr
    assert f"{lab}: the trace has timestamps" in result.stderr
    windows = [r for r in map(json.loads, result.stdout.splitlines()) if not r.get("summary")]
    assert {r["window_id"].split("/")[-2] for r in windows if r["file"] == str(trace)} == {f"{COUNT}"}


def test_choice_errors_are_clean(app: typer.Typer, models: Path, tmp_path: Path) -> None:
    only_time = tmp_path / "only-time"
    shutil.copytree(models / "default", only_time / "default")
    names = tmp_path / "n.txt"
    names.write_text("futex read write\n" * 100)
    result = _score(app, ["--models", str(only_time), "-f", "names", str(names)])
    assert result.exit_code == 2
    assert "no count-window model" in result.output
    assert "Traceback" not in result.output
    result = _score(app, ["--models", str(tmp_path / "empty"), "-f", "names", str(names)])
    assert result.exit_code == 2
    assert "no model artifact" in result.output
    result = _score(app, ["--models", str(models), "--model", str(models / "count"), "-f", "names", str(names)])
    assert result.exit_code != 0
    assert "not both" in result.output
    # a forced model is still named, and still refuses what it cannot cut
    result = _score(app, ["--model", str(models / "count"), "-f", "names", str(names)])
    assert result.exit_code == 0, result.output
    assert _summary(result.stdout)["model_choice"]["reason"] == "the model given with --model"
    result = _score(app, ["--model", str(models / "default"), "-f", "names", str(names)])
    assert result.exit_code == 2
    assert "no timestamps" in result.output
