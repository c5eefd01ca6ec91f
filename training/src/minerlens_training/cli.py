"""``minerlens train`` / ``minerlens evaluate`` (also ``minerlens-train train|evaluate``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from minerlens_core.errors import MinerlensError
from minerlens_core.features import FeatureSpec, WindowPolicy
from minerlens_core.features.gates import GATE_COLUMNS, GATES, can_gate
from minerlens_core.terminal import make_console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from minerlens_training.calibration import CALIBRATIONS, Calibration

if TYPE_CHECKING:
    from minerlens_training.datasets import Dataset

console = make_console(stderr=True)
DEFAULT_MODELS = "tree,xgboost,mlp"
ALL_MODELS = "tree,xgboost,mlp,lstm,lstm-ae"
WINDOW_MODEL = "xgboost"
"""the model the window-length comparison runs"""
app = typer.Typer(help="Train and evaluate minerlens detectors on a lab dataset.", no_args_is_help=True)

WindowCount = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="count windows of N syscalls, for order-only traces (trained on the lab data without timestamps, "
        "resource samples or fd kinds unless --keep-time)",
    ),
]
KeepTime = Annotated[
    bool, typer.Option(help="with --window-count: keep timestamps and resource samples (not the order-only view)")
]
PerProcess = Annotated[
    bool, typer.Option(help="also per-process windows (each process of a multi-process pod, same slot)")
]
ContextDropout = Annotated[
    bool,
    typer.Option(
        help="train on every window and on its twin without resource samples and fd kinds (what imported "
        "traces look like); evaluate also reports window_bare"
    ),
]


CalibrationOpt = Annotated[str, typer.Option(help="threshold from: oof (out-of-fold by run) | oof-family | train")]


def _spec(window_seconds: float | None, window_count: int | None = None, per_process: bool = False) -> FeatureSpec:
    if window_seconds is not None and window_count is not None:
        msg = "give --window-seconds or --window-count, not both"
        raise typer.BadParameter(msg)
    if window_count is not None:
        policy = WindowPolicy.count(window_count)
    elif window_seconds is not None:
        policy = WindowPolicy.time(window_seconds)
    elif not per_process:
        return FeatureSpec.default()
    else:
        policy = FeatureSpec.default().window
    if per_process:
        try:
            policy = WindowPolicy.model_validate({**policy.model_dump(), "per_process": True})
        except ValueError as exc:
            msg = f"--per-process: this feature library's window policy cannot ({exc})"
            raise typer.BadParameter(msg) from None
    return FeatureSpec.build(window=policy)


QuietTwins = Annotated[
    bool,
    typer.Option(
        help="train also on every window with resource samples as a twin without syscall identities (which "
        "syscalls, in which order), so the model separates miners by behaviour too, not only by the training "
        "miners' own syscalls"
    ),
]
Gate = Annotated[
    str,
    typer.Option(
        help="decision gate: none | network (a window with resource samples and no socket open or used cannot "
        "alert: a miner needs its pool; the threshold is calibrated on the windows it leaves open)"
    ),
]


def _gate(value: str, kind: str, spec: FeatureSpec) -> str:
    if value not in GATES:
        msg = f"--gate must be one of {', '.join(GATES)}, not {value!r}"
        raise typer.BadParameter(msg)
    if value != "none" and (kind == "sequence" or not can_gate(spec.names)):
        msg = f"--gate {value} needs a feature model on a spec with resource features ({', '.join(GATE_COLUMNS)})"
        raise typer.BadParameter(msg)
    return value


def _calibration(value: str) -> Calibration:
    for how in CALIBRATIONS:
        if value == how:
            return how
    msg = f"--calibration must be one of {', '.join(CALIBRATIONS)}, not {value!r}"
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
    """Progress on stderr: a rich bar on a terminal, else one line per step (``[i/n] step, elapsed``) so a log
    shows it too. The callback advances it by one step and shows the step's name."""
    if not console.is_terminal:
        t0, done = time.perf_counter(), [0]

        def line(step: str) -> None:
            done[0] += 1
            elapsed = time.perf_counter() - t0
            eta = elapsed / done[0] * (total - done[0])
            text = f"{description} [{done[0]}/{total}] {step} ({elapsed:.0f} s, ~{eta:.0f} s left)"
            console.print(text, highlight=False, markup=False)

        yield line
        return
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


def _load(data: list[Path], spec: FeatureSpec, *, sequences: bool, order_only: bool, bare: bool = False) -> Dataset:
    """``load_dataset`` with a progress line per run."""
    from minerlens_core.datasets.manifest import load_manifest

    from minerlens_training.datasets import load_dataset

    total = 0
    for d in data:
        try:
            total += sum(r.status == "ok" and r.label in ("miner", "benign") for r in load_manifest(d).runs)
        except (OSError, ValueError):
            total += 0  # load_dataset reports it
    view = ", order-only view" if order_only else ""
    with _bar(f"featurize ({spec.window.kind} windows{view})", max(total, 1)) as step:
        ds = load_dataset(data, spec, sequences=sequences, order_only=order_only, bare=bare, progress=step)
    console.print(
        f"{len(ds)} windows ({int(ds.y.sum())} miner, {int(ds.is_process.sum())} process windows) "
        f"from {len(ds.runs)} runs"
    )
    return ds


FeedbackOpt = Annotated[
    list[Path] | None,
    typer.Option("--feedback", help="`minerlens explainer feedback-export` files: operator-judged windows, trained on"),
]


def train_cmd(
    data: Annotated[list[Path], typer.Option("--data", help="lab dataset directory (repeat to join datasets)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="model artifact directory to write")],
    model: Annotated[str, typer.Option(help="tree | xgboost | mlp | lstm | lstm-ae")] = "xgboost",
    fpr: Annotated[float, typer.Option(help="benign-window false-positive rate the threshold is tuned for")] = 0.01,
    seed: Annotated[int, typer.Option()] = 0,
    model_version: Annotated[str, typer.Option(help="version recorded in the manifest")] = "0.1.0",
    window_seconds: Annotated[float | None, typer.Option(help="time windows of this length (traces with time)")] = None,
    window_count: WindowCount = None,
    keep_time: KeepTime = False,
    per_process: PerProcess = False,
    context_dropout: ContextDropout = False,
    quiet_twins: QuietTwins = False,
    calibration: CalibrationOpt = "oof",
    gate: Gate = "none",
    feedback: FeedbackOpt = None,
) -> None:
    """Fit a detector on every window of a dataset, set its threshold, write a verified ONNX artifact.

    ``--window-count N`` trains the count-window model for order-only traces (``minerlens score`` picks it for
    traces without timestamps): the lab traces are cut into N-syscall windows after dropping their
    timestamps, resource samples and fd kinds, which order-only traces do not have."""
    import numpy as np

    from minerlens_training.artifacts import TrainingData, save_artifact
    from minerlens_training.calibration import calibrate, calibration_groups
    from minerlens_training.context import training_rows
    from minerlens_training.detectors import Detector, SequenceDetector, input_kind, make_detector

    names = _models(model)
    if len(names) != 1:
        msg = f"--model takes one model, not {model!r}"
        raise typer.BadParameter(msg)
    name = names[0]
    spec = _spec(window_seconds, window_count, per_process)
    order_only = window_count is not None and not keep_time
    dropout = context_dropout and input_kind(name) != "sequence" and not order_only
    ds = _load(data, spec, sequences=input_kind(name) == "sequence", order_only=order_only, bare=dropout)
    det = make_detector(name, seed=seed)
    gate = _gate(gate, det.input_kind, spec)
    all_rows = np.arange(len(ds), dtype=np.int64)
    quiet = quiet_twins and det.input_kind != "sequence"
    inputs, y, src, eligible = training_rows(
        ds, all_rows, ds.inputs(det.input_kind), gate=gate, dropout=dropout, quiet=quiet
    )
    kept = int((~ds.gated(gate)).sum())
    if kept < len(ds):
        console.print(f"gate {gate}: {len(ds) - kept} windows without network left out (they never alert)")
    has = spec.names.index("res.has") if quiet and "res.has" in spec.names else None
    twins = int(np.count_nonzero(inputs[:, has] == 1.0)) // 2 if has is not None else 0  # a twin per such window
    if dropout:
        console.print(f"context dropout: {len(src) - kept - twins} windows also without resource samples and fd kinds")
    if quiet:
        console.print(f"quiet twins: {twins} windows also without syscall identities")
    how = _calibration(calibration)
    groups = calibration_groups(ds, src, how)
    judged, n_fb, m_fb = "", 0, 0
    if feedback:
        from minerlens_training.feedback import FeedbackError, add_feedback

        if det.input_kind == "sequence" or order_only:
            msg = "--feedback holds feature windows of time-window specs: not for sequence or count models"
            raise typer.BadParameter(msg)
        try:
            inputs, y, groups, eligible, fb = add_feedback(
                feedback, spec, np.asarray(inputs, np.float32), y, groups, eligible, gate=gate, quiet=quiet
            )
        except (FeedbackError, OSError) as exc:
            raise typer.BadParameter(str(exc)) from None
        n_fb, m_fb, judged = len(fb.y), int(fb.y.sum()), fb.provenance
        console.print(f"feedback: {fb.summary}")
    t0 = time.perf_counter()
    with _single_threaded():
        det.fit(inputs, y)
        console.print(f"fitted {name} in {time.perf_counter() - t0:.1f} s")
        threshold = calibrate(det, inputs, y, groups, fpr, how, eligible=eligible)
    info = TrainingData(
        manifest_sha256=ds.manifest_sha256,
        source=ds.source
        + (" (order-only view: no timestamps, resource samples or fd kinds)" if order_only else "")
        + judged,
        windows=len(ds) + n_fb,
        miner_windows=int(ds.y.sum()) + m_fb,
        runs=len(ds.runs),
    )
    source = {
        "oof": "out-of-fold (grouped by run) benign windows",
        "oof-family": "out-of-fold (grouped by family) benign windows",
        "train": "training benign windows",
    }[how]
    reference = (ds.X, ds.y)
    if isinstance(det, SequenceDetector):
        from minerlens_training.sequence.artifacts import save_sequence_artifact

        save_sequence_artifact(
            det, out, spec, info, model_version=model_version, threshold_source=source, reference=reference
        )
    elif isinstance(det, Detector):
        save_artifact(
            det, out, spec, info, model_version=model_version, threshold_source=source, reference=reference, gate=gate
        )
    what = f"{name} on {policy_text(spec)} windows{' (order-only view)' if order_only else ''}"
    console.print(f"[green]ok[/]: {what}, threshold {threshold:.4f} (FPR {fpr}) -> {out}")


def policy_text(spec: FeatureSpec) -> str:
    w = spec.window
    return f"{w.seconds:g}-s time" if w.kind == "time" else f"{w.size}-syscall count"


def _lookalikes(value: str | None) -> tuple[str, ...]:
    from minerlens_training.breakdowns import LOOKALIKES

    if value is None:
        return LOOKALIKES
    return tuple(f.strip() for f in value.split(",") if f.strip())


def evaluate_cmd(
    data: Annotated[list[Path], typer.Option("--data", help="lab dataset directory (repeat to join datasets)")],
    report: Annotated[Path, typer.Option("--report", help="directory for NAME.json, NAME.md and NAME-*.png")],
    models: Annotated[
        str, typer.Option(help=f"comma-separated, of {ALL_MODELS} (the sequence models are slow: opt in)")
    ] = DEFAULT_MODELS,
    fpr: Annotated[float, typer.Option(help="target benign-window FPR of each split's threshold")] = 0.01,
    alert_k: Annotated[int, typer.Option(min=1, help="alert policy (the scorer's): open when k ...")] = 3,
    alert_n: Annotated[int, typer.Option(min=1, help="... of the last n scored windows are over the threshold")] = 5,
    resolve_m: Annotated[int, typer.Option(min=1, help="resolve after m consecutive windows ...")] = 5,
    resolve_factor: Annotated[float, typer.Option(help="... below this factor x threshold")] = 0.5,
    min_syscalls: Annotated[int, typer.Option(min=0, help="windows with fewer syscalls are not scored")] = 3,
    k_folds: Annotated[int, typer.Option(help="folds of the group-by-run split")] = 5,
    lofo_folds: Annotated[
        int, typer.Option(min=0, help="0: one split per family; K: families held out in K groups (faster)")
    ] = 0,
    train_cap: Annotated[
        int,
        typer.Option(min=0, help="at most this many training windows per run and window kind (0: all); test: all"),
    ] = 32,
    jobs: Annotated[int, typer.Option(min=1, help="splits fitted in parallel worker processes")] = 1,
    lookalikes: Annotated[
        str | None, typer.Option(help="benign look-alike families, comma-separated (default: the lab's)")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    window_seconds: Annotated[float | None, typer.Option(help="time windows instead of the default spec")] = None,
    window_count: WindowCount = None,
    keep_time: KeepTime = False,
    per_process: PerProcess = False,
    context_dropout: ContextDropout = False,
    quiet_twins: QuietTwins = False,
    calibration: CalibrationOpt = "oof",
    oof_folds: Annotated[
        int, typer.Option(min=2, help="out-of-fold models per threshold (each split costs 1 + this many fits)")
    ] = 3,
    leaky: Annotated[bool, typer.Option(help="also the paper-style random split of windows (contrast)")] = True,
    paper: Annotated[
        bool, typer.Option(help="also reproduce the paper's setup (35-gram frames, random 70/30) beside LOFO")
    ] = False,
    paper_frames: Annotated[int, typer.Option(help="paper setup: at most this many frames per run")] = 128,
    compare_windows: Annotated[
        str | None, typer.Option(help="also evaluate XGBoost on time windows of these seconds, e.g. 1,2,5")
    ] = None,
    name: Annotated[str, typer.Option(help="report file stem")] = "evaluation",
    plots: Annotated[bool, typer.Option(help="write PNG figures next to the Markdown")] = True,
    gate: Gate = "none",
) -> None:
    """Leave-one-family-out, leave-one-implementation-out, group-by-run and leaky random-window evaluation,
    with the scorer's alert policy replayed per run -> Markdown + JSON + plots."""
    from minerlens_training.alert_replay import ScorerAlertPolicy
    from minerlens_training.detectors import input_kind
    from minerlens_training.evaluate import EvalConfig, count_fits, evaluate, window_comparison_row
    from minerlens_training.report import write_report

    if alert_k > alert_n:
        msg = f"--alert-k {alert_k} > --alert-n {alert_n}"
        raise typer.BadParameter(msg)
    if not 0 < resolve_factor <= 1:
        msg = "--resolve-factor must be in (0, 1]"
        raise typer.BadParameter(msg)
    cfg = EvalConfig(
        models=_models(models),
        fpr=fpr,
        policy=ScorerAlertPolicy(
            k=alert_k,
            n=alert_n,
            resolve_m=resolve_m,
            resolve_factor=resolve_factor,
            min_syscalls=min_syscalls,
            gate=_gate(gate, "features", _spec(window_seconds, window_count, per_process)),
        ),
        k_folds=k_folds,
        seed=seed,
        leaky=leaky,
        calibration=_calibration(calibration),
        oof_folds=oof_folds,
        lofo_folds=lofo_folds,
        train_cap=train_cap,
        jobs=jobs,
        lookalikes=_lookalikes(lookalikes),
        context_dropout=context_dropout,
        quiet_twins=quiet_twins,
    )
    seconds = _seconds(compare_windows) if compare_windows else ()
    t0 = time.perf_counter()
    sequences = any(input_kind(m) == "sequence" for m in cfg.models)
    order_only = window_count is not None and not keep_time
    ds = _load(
        data,
        _spec(window_seconds, window_count, per_process),
        sequences=sequences,
        order_only=order_only,
        bare=context_dropout and not order_only,
    )
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
        ds_s = _load(data, _spec(s), sequences=False, order_only=False)
        cfg_s = replace(cfg, models=(WINDOW_MODEL,), leaky=False, schemes=("lofo", "run-kfold"))
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
