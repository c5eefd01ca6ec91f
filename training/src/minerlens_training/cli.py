"""``minerlens train`` / ``minerlens evaluate`` (also ``minerlens-train train|evaluate``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from minerlens_core.errors import MinerlensError
from minerlens_core.features import FeatureSpec, WindowPolicy
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from minerlens_training.calibration import Calibration

console = Console(stderr=True)
ALL_MODELS = "tree,xgboost,mlp,lstm,lstm-ae"
WINDOW_MODEL = "xgboost"
"""the model the window-length comparison runs"""
app = typer.Typer(help="Train and evaluate minerlens detectors on a lab dataset.", no_args_is_help=True)


def _spec(window_seconds: float | None) -> FeatureSpec:
    if window_seconds is None:
        return FeatureSpec.default()
    return FeatureSpec.build(window=WindowPolicy.time(window_seconds))


def _calibration(value: str) -> Calibration:
    if value == "oof":
        return "oof"
    if value == "train":
        return "train"
    msg = f"--calibration must be oof or train, not {value!r}"
    raise typer.BadParameter(msg)


def _models(value: str) -> tuple[str, ...]:
    from minerlens_training.detectors import DETECTORS

    names = tuple(m.strip() for m in value.split(",") if m.strip())
    unknown = [m for m in names if m not in DETECTORS]
    if unknown or not names:
        msg = f"unknown model(s) {unknown}; known: {', '.join(DETECTORS)}"
        raise typer.BadParameter(msg)
    return names


def _seconds(value: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        out = ()
    if not out or min(out) <= 0:
        msg = f"--compare-windows takes positive seconds like 1,2,5, not {value!r}"
        raise typer.BadParameter(msg)
    return out


@contextmanager
def _single_threaded() -> Iterator[None]:
    """BLAS/OpenMP pools at one thread: the models are small, and on a shared machine extra threads that wait
    on each other made MLP fits ~4x slower. (XGBoost and torch threads are detector hyperparameters.)"""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@contextmanager
def _bar(description: str, total: int) -> Iterator[Callable[[str], None]]:
    """A rich progress bar on stderr; the callback advances it by one step and shows the step's name."""
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[step]}"),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(description, total=total, step="")
        yield lambda step: progress.update(task, advance=1, step=step)


def train_cmd(
    data: Annotated[list[Path], typer.Option("--data", help="lab dataset directory (repeat to join datasets)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="model artifact directory to write")],
    model: Annotated[str, typer.Option(help="tree | xgboost | mlp | lstm | lstm-ae")] = "xgboost",
    fpr: Annotated[float, typer.Option(help="benign-window false-positive rate the threshold is tuned for")] = 0.01,
    seed: Annotated[int, typer.Option()] = 0,
    model_version: Annotated[str, typer.Option(help="version recorded in the manifest")] = "0.1.0",
    window_seconds: Annotated[
        float | None, typer.Option(help="time windows of this length instead of the default spec (not servable)")
    ] = None,
    calibration: Annotated[str, typer.Option(help="threshold from: oof (out-of-fold by run) | train")] = "oof",
) -> None:
    """Fit a detector on every window of a dataset, set its threshold, write a verified ONNX artifact."""
    from minerlens_training.artifacts import TrainingData, save_artifact
    from minerlens_training.calibration import calibrate
    from minerlens_training.datasets import load_dataset
    from minerlens_training.detectors import Detector, SequenceDetector, make_detector

    names = _models(model)
    if len(names) != 1:
        msg = f"--model takes one model, not {model!r}"
        raise typer.BadParameter(msg)
    name = names[0]
    spec = _spec(window_seconds)
    ds = load_dataset(data, spec)
    console.print(f"{len(ds)} windows ({int(ds.y.sum())} miner) from {len(ds.runs)} runs")
    det = make_detector(name, seed=seed)
    inputs = ds.inputs(det.input_kind)
    how = _calibration(calibration)
    t0 = time.perf_counter()
    with _single_threaded():
        det.fit(inputs, ds.y)
        console.print(f"fitted {name} in {time.perf_counter() - t0:.1f} s")
        threshold = calibrate(det, inputs, ds.y, ds.run, fpr, how)
    info = TrainingData(
        manifest_sha256=ds.manifest_sha256,
        source=ds.source,
        windows=len(ds),
        miner_windows=int(ds.y.sum()),
        runs=len(ds.runs),
    )
    source = "out-of-fold (grouped by run) benign windows" if how == "oof" else "training benign windows"
    reference = (ds.X, ds.y)
    if isinstance(det, SequenceDetector):
        from minerlens_training.sequence.artifacts import save_sequence_artifact

        save_sequence_artifact(
            det, out, spec, info, model_version=model_version, threshold_source=source, reference=reference
        )
    elif isinstance(det, Detector):
        save_artifact(det, out, spec, info, model_version=model_version, threshold_source=source, reference=reference)
    console.print(f"[green]ok[/]: {name} threshold {threshold:.4f} (FPR {fpr}) -> {out}")


def evaluate_cmd(
    data: Annotated[list[Path], typer.Option("--data", help="lab dataset directory (repeat to join datasets)")],
    report: Annotated[Path, typer.Option("--report", help="directory for NAME.json, NAME.md and NAME-*.png")],
    models: Annotated[str, typer.Option(help="comma-separated: tree,xgboost,mlp,lstm,lstm-ae")] = ALL_MODELS,
    fpr: Annotated[float, typer.Option(help="target benign-window FPR of each split's threshold")] = 0.01,
    alert_k: Annotated[int, typer.Option(help="alert when k ...")] = 3,
    alert_n: Annotated[int, typer.Option(help="... of the last n windows are over the threshold")] = 5,
    k_folds: Annotated[int, typer.Option(help="folds of the group-by-run split")] = 5,
    seed: Annotated[int, typer.Option()] = 0,
    window_seconds: Annotated[float | None, typer.Option(help="time windows instead of the default spec")] = None,
    calibration: Annotated[str, typer.Option(help="threshold from: oof (out-of-fold by run) | train")] = "oof",
    paper: Annotated[
        bool, typer.Option(help="also reproduce the paper's setup (35-gram frames, random 70/30) beside LOFO")
    ] = False,
    paper_frames: Annotated[int, typer.Option(help="paper setup: at most this many frames per run")] = 128,
    compare_windows: Annotated[
        str | None, typer.Option(help="also evaluate XGBoost on time windows of these seconds, e.g. 1,2,5")
    ] = None,
    name: Annotated[str, typer.Option(help="report file stem")] = "evaluation",
    plots: Annotated[bool, typer.Option(help="write PNG figures next to the Markdown")] = True,
) -> None:
    """Leave-one-family-out, group-by-run and leaky random-window evaluation -> Markdown + JSON + plots."""
    from minerlens_training.datasets import load_dataset
    from minerlens_training.evaluate import EvalConfig, count_fits, evaluate, window_comparison_row
    from minerlens_training.metrics import AlertPolicy
    from minerlens_training.report import write_report

    cfg = EvalConfig(
        models=_models(models),
        fpr=fpr,
        policy=AlertPolicy(alert_k, alert_n),
        k_folds=k_folds,
        seed=seed,
        calibration=_calibration(calibration),
    )
    seconds = _seconds(compare_windows) if compare_windows else ()
    t0 = time.perf_counter()
    ds = load_dataset(data, _spec(window_seconds))
    console.print(f"{len(ds)} windows ({int(ds.y.sum())} miner) from {len(ds.runs)} runs")
    with _single_threaded(), _bar("evaluate", count_fits(ds, cfg)) as step:
        result = evaluate(ds, cfg, progress=step)
    if paper:
        from minerlens_training.paper import count_paper_fits, evaluate_paper, frames_dataset

        fd = frames_dataset(data, ds.spec, per_run=paper_frames)
        with _single_threaded(), _bar("paper setup", count_paper_fits(fd, seed=seed)) as step:
            result["paper"] = evaluate_paper(fd, seed=seed, progress=step)
    rows = []
    for s in seconds:
        if window_seconds == s and WINDOW_MODEL in cfg.models:
            rows.append(window_comparison_row(ds, result, WINDOW_MODEL))
            continue
        ds_s = load_dataset(data, _spec(s))
        cfg_s = replace(cfg, models=(WINDOW_MODEL,), leaky=False)
        with _single_threaded(), _bar(f"{WINDOW_MODEL} {s:g} s windows", count_fits(ds_s, cfg_s)) as step:
            rows.append(window_comparison_row(ds_s, evaluate(ds_s, cfg_s, progress=step), WINDOW_MODEL))
    if rows:
        result["window_comparison"] = rows
    result["wall_seconds"] = round(time.perf_counter() - t0, 1)
    js, md = write_report(result, report, name=name, plots=plots)
    console.print(f"[green]ok[/]: {md} and {js} ({result['wall_seconds']:.0f} s)")


app.command("train")(train_cmd)
app.command("evaluate")(evaluate_cmd)


def register(root: typer.Typer) -> None:
    """``minerlens.commands`` entry point: adds ``minerlens train`` and ``minerlens evaluate``."""
    root.command("train")(train_cmd)
    root.command("evaluate")(evaluate_cmd)


def main() -> None:
    try:
        app()
    except MinerlensError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise SystemExit(2) from None
