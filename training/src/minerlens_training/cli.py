"""``minerlens train`` / ``minerlens evaluate`` (also ``minerlens-train train|evaluate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from minerlens_core.errors import MinerlensError
from minerlens_core.features import FeatureSpec, WindowPolicy
from rich.console import Console

from minerlens_training.calibration import Calibration

console = Console(stderr=True)
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


def train_cmd(
    data: Annotated[list[Path], typer.Option("--data", help="lab dataset directory (repeat to join datasets)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="model artifact directory to write")],
    model: Annotated[str, typer.Option(help="tree | xgboost | mlp")] = "xgboost",
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
    from minerlens_training.detectors import make_detector

    spec = _spec(window_seconds)
    ds = load_dataset(data, spec)
    console.print(f"{len(ds)} windows ({int(ds.y.sum())} miner) from {len(ds.runs)} runs")
    det = make_detector(model, seed=seed).fit(ds.X, ds.y)
    how = _calibration(calibration)
    threshold = calibrate(det, ds.X, ds.y, ds.run, fpr, how)
    info = TrainingData(
        manifest_sha256=ds.manifest_sha256,
        source=ds.source,
        windows=len(ds),
        miner_windows=int(ds.y.sum()),
        runs=len(ds.runs),
    )
    source = "out-of-fold (grouped by run) benign windows" if how == "oof" else "training benign windows"
    save_artifact(det, out, spec, info, model_version=model_version, threshold_source=source)
    console.print(f"[green]ok[/]: {model} threshold {threshold:.4f} (FPR {fpr}) -> {out}")


def evaluate_cmd(
    data: Annotated[list[Path], typer.Option("--data", help="lab dataset directory (repeat to join datasets)")],
    report: Annotated[Path, typer.Option("--report", help="directory for evaluation.json and evaluation.md")],
    models: Annotated[str, typer.Option(help="comma-separated: tree,xgboost,mlp")] = "tree,xgboost,mlp",
    fpr: Annotated[float, typer.Option(help="target benign-window FPR of each split's threshold")] = 0.01,
    alert_k: Annotated[int, typer.Option(help="alert when k ...")] = 3,
    alert_n: Annotated[int, typer.Option(help="... of the last n windows are over the threshold")] = 5,
    k_folds: Annotated[int, typer.Option(help="folds of the group-by-run split")] = 5,
    seed: Annotated[int, typer.Option()] = 0,
    window_seconds: Annotated[float | None, typer.Option(help="time windows instead of the default spec")] = None,
    calibration: Annotated[str, typer.Option(help="threshold from: oof (out-of-fold by run) | train")] = "oof",
) -> None:
    """Leave-one-family-out, group-by-run and leaky random-window evaluation -> Markdown + JSON."""
    from minerlens_training.datasets import load_dataset
    from minerlens_training.evaluate import EvalConfig, evaluate
    from minerlens_training.metrics import AlertPolicy
    from minerlens_training.report import write_report

    ds = load_dataset(data, _spec(window_seconds))
    console.print(f"{len(ds)} windows ({int(ds.y.sum())} miner) from {len(ds.runs)} runs")
    cfg = EvalConfig(
        models=tuple(m.strip() for m in models.split(",") if m.strip()),
        fpr=fpr,
        policy=AlertPolicy(alert_k, alert_n),
        k_folds=k_folds,
        seed=seed,
        calibration=_calibration(calibration),
    )
    result = evaluate(ds, cfg, progress=lambda msg: console.print(f"[dim]{msg}[/]"))
    js, md = write_report(result, report)
    console.print(f"[green]ok[/]: {md} and {js}")


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
