"""``minerlens score``, ``minerlens explain`` and ``minerlens explain-quality``.

``score`` prints JSON lines on stdout: one object per window, then one summary object per file.
``explain`` prints one window's explanation (text, or JSON with ``--json``) and can write a PNG.
``explain-quality`` measures SHAP/LIME/LSTM-AE explanations on a lab dataset (docs/reports/explanations.*).
Errors (bad file, unknown format, unverifiable model) print one line on stderr and exit with status 2.

``score`` picks the model per file from a models directory (``--models DIR``: ``DIR/default``, the time-window
model, for traces with timestamps; ``DIR/count``, the count-window model, for order-only traces) and says which
(``model_choice`` in the file's summary, and a line on stderr). ``--model DIR`` forces one model. Without
either: ``$MINERLENS_MODEL_DIR`` (one model), else the ``models`` directory in the working directory or in the
source checkout (``explain`` uses its ``default``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from minerlens_core.errors import MinerlensError
from minerlens_core.features.gates import gated_mask
from minerlens_core.syscalls import parse_arch
from minerlens_core.terminal import make_console

from minerlens_training.explain.trace_windows import TraceWindows, iso, read_windows

console = make_console(stderr=True)
MODEL_ENV = "MINERLENS_MODEL_DIR"
MODELS = Path("models")
DEFAULT_MODEL = MODELS / "default"
EXIT_USAGE = 2


def default_models_dir() -> Path | None:
    """The first ``models`` directory whose ``default`` holds a manifest (cwd, source checkout)."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[3]):
        if (base / DEFAULT_MODEL / "manifest.json").is_file():
            return base / MODELS
    return None


def default_model_dir() -> Path | None:
    """``$MINERLENS_MODEL_DIR``, else the first ``models/default`` holding a manifest (cwd, source checkout)."""
    env = os.environ.get(MODEL_ENV, "").strip()
    if env:
        return Path(env)
    models = default_models_dir()
    return None if models is None else models / DEFAULT_MODEL.name


def _model_dir(model: Path | None) -> Path:
    chosen = model or default_model_dir()
    if chosen is None:
        msg = f"no model: pass --model DIR or set {MODEL_ENV} (no {DEFAULT_MODEL} found)"
        raise typer.BadParameter(msg, param_hint="--model")
    return chosen


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/] {message}", highlight=False)
    return typer.Exit(EXIT_USAGE)


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")


# ---- score ------------------------------------------------------------------------------------------


def score_records(
    tw: TraceWindows,
    scores: np.ndarray[Any, Any],
    threshold: float,
    model: dict[str, str],
    k: int,
    n: int,
    choice: dict[str, str] | None = None,
    gated: np.ndarray[Any, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """The window objects of one file, then its summary object (with ``model_choice`` when given). ``gated``: the
    windows the model's decision gate makes benign (``minerlens_core.features.gates``), as the scorer does."""
    from minerlens_training.metrics import AlertPolicy

    closed = np.zeros(len(scores), np.bool_) if gated is None else np.asarray(gated, np.bool_)
    flags = (scores > threshold) & ~closed
    for i, w in enumerate(tw.windows):
        pid = getattr(w, "pid", None)  # per-process windows (when the feature library emits them)
        yield {
            "file": str(tw.file),
            "window": i,
            "window_id": tw.window_id(i),
            "pod": w.pod_uid,
            "namespace": w.namespace,
            "pod_name": w.pod_name,
            "container": w.container_id,
            **({"pid": int(pid), "comm": str(getattr(w, "comm", ""))} if pid is not None else {}),
            "start": iso(w.start_ns),
            "end": iso(w.end_ns),
            "count": w.count,
            "complete": w.complete,
            "score": round(float(scores[i]), 6),
            "miner": bool(flags[i]),
            **({"gated": True} if closed[i] else {}),
            "model": model,
        }
    policy = AlertPolicy(k, n)
    alert_pods: list[str] = []
    first: int | None = None
    for rows in tw.streams():
        hit = policy.first_alert(flags[rows])
        if hit is not None:
            alert_pods.append(tw.windows[rows[0]].pod_uid)
            first = rows[hit] if first is None else min(first, rows[hit])
    summary: dict[str, Any] = {
        "file": str(tw.file),
        "summary": True,
        "windows": len(tw),
        "miner_windows": int(flags.sum()),
        "max_score": round(float(scores.max()), 6) if len(tw) else None,
        "alert": bool(alert_pods),
        "alert_policy": {"k": k, "n": n},
        "alert_pods": alert_pods,
        "first_alert_window": first,
        "threshold": threshold,
        "model": model,
    }
    if choice is not None:
        summary["model_choice"] = choice
    if tw.malformed_lines:
        summary["malformed_lines"] = tw.malformed_lines
    if not len(tw):
        summary["note"] = f"no window: the trace is shorter than one {tw.tag} window"
    yield summary


def score_cmd(
    files: Annotated[list[Path], typer.Argument(help="trace files; each is scored and summarised on its own")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="parquet|strace|perf|sysdig|lid-ds|tetragon|names")],
    model: Annotated[
        Path | None, typer.Option(help=f"one model artifact directory for every file (default: ${MODEL_ENV})")
    ] = None,
    models: Annotated[
        Path | None,
        typer.Option(
            help="models directory: DIR/default (time windows) scores traces with timestamps, DIR/count (count "
            "windows) order-only traces (default: ./models or the checkout's)"
        ),
    ] = None,
    alert_k: Annotated[int, typer.Option(help="alert when k ...", min=1)] = 3,
    alert_n: Annotated[int, typer.Option(help="... of the last n windows of a pod are over the threshold", min=1)] = 5,
    arch: Annotated[
        str | None, typer.Option(help="architecture of syscall numbers in the input (default: host)")
    ] = None,
) -> None:
    """Score trace files window by window with a verified ONNX model: JSON lines on stdout. For each file the
    model that fits it is picked (time windows when it has timestamps, count windows otherwise) and named."""
    if alert_k > alert_n:
        msg = f"--alert-k {alert_k} > --alert-n {alert_n}"
        raise typer.BadParameter(msg, param_hint="--alert-k")
    if model is not None and models is not None:
        msg = "give --model (one model) or --models (a directory to pick from), not both"
        raise typer.BadParameter(msg, param_hint="--models")
    single = model or (None if models else _single_from_env())
    library_dir = None if single else (models or default_models_dir())
    if single is None and library_dir is None:
        msg = f"no model: pass --model DIR or --models DIR or set {MODEL_ENV} (no {DEFAULT_MODEL} found)"
        raise typer.BadParameter(msg, param_hint="--model")
    try:
        from minerlens_core.models.onnx_model import OnnxModel

        from minerlens_training.model_choice import (
            Choice,
            ModelLibrary,
            fixed_kind,
            has_time,
            import_trace,
            trace_windows,
        )

        a = parse_arch(arch) if arch else None
        fixed = OnnxModel(single) if single else None
        library = ModelLibrary(library_dir) if library_dir else None
        for f in files:
            result = import_trace(f, fmt, a)
            if library is not None:
                choice = library.choose(has_time(result))
            else:
                assert fixed is not None
                choice = Choice(fixed, fixed.directory, fixed_kind(fixed), "the model given with --model")
            onnx = choice.model
            console.print(f"{f}: {choice.reason} ({choice.directory}, {choice.tag})", highlight=False, markup=False)
            tw = trace_windows(f, result, onnx.spec)
            inputs = tw.inputs(onnx.manifest) if len(tw) else None
            scores = onnx.score(inputs) if inputs is not None else np.zeros(0)
            gated = None
            if inputs is not None and onnx.manifest.gate != "none" and onnx.manifest.input_kind == "features":
                gated = gated_mask(onnx.manifest.gate, onnx.spec.names, inputs)
            ref = {"name": onnx.ref.name, "version": onnx.ref.version}
            records = score_records(tw, scores, onnx.threshold, ref, alert_k, alert_n, choice.as_json(), gated)
            for record in records:
                _emit(record)
    except (MinerlensError, ValueError) as exc:
        raise _fail(str(exc)) from None


def _single_from_env() -> Path | None:
    env = os.environ.get(MODEL_ENV, "").strip()
    return Path(env) if env else None


# ---- explain ----------------------------------------------------------------------------------------


def explain_cmd(
    file: Annotated[Path, typer.Argument(help="trace file")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="parquet|strace|perf|sysdig|lid-ds|tetragon|names")],
    method: Annotated[str, typer.Option(help="shap | lime | lstm-ae")] = "shap",
    model: Annotated[
        Path | None, typer.Option(help=f"model artifact directory (default: ${MODEL_ENV} or models/default)")
    ] = None,
    window: Annotated[
        int | None, typer.Option(help="window number as `minerlens score` prints it (default: highest score)")
    ] = None,
    top: Annotated[int, typer.Option(help="contributions to show", min=1, max=100)] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="print the Explanation as JSON instead of text")] = False,
    plot: Annotated[Path | None, typer.Option(help="also write a PNG bar chart here")] = None,
    arch: Annotated[
        str | None, typer.Option(help="architecture of syscall numbers in the input (default: host)")
    ] = None,
) -> None:
    """Explain why a window of a trace file got its score (SHAP, LIME or the LSTM autoencoder)."""
    from minerlens_training.explain import METHODS

    if method not in METHODS:
        msg = f"{method!r}: choose one of {', '.join(METHODS)}"
        raise typer.BadParameter(msg, param_hint="--method")
    directory = _model_dir(model)
    try:
        from minerlens_training.explain import load_explainer, render_png

        explainer = load_explainer(directory, method)
        tw = read_windows(file, fmt, explainer.spec, arch=parse_arch(arch) if arch else None)
        if not len(tw):
            msg = f"{file}: no window (the trace is shorter than one {tw.tag} window)"
            raise _fail(msg)
        inputs = tw.inputs(explainer.manifest)
        if window is None:
            chosen = int(np.argmax(explainer.score(inputs)))
        elif 0 <= window < len(tw):
            chosen = window
        else:
            msg = f"--window {window}: {file} has windows 0..{len(tw) - 1}"
            raise _fail(msg)
        explanation = explainer.explain(
            inputs[chosen], window_id=tw.window_id(chosen), top=top, ids=tw.windows[chosen].ids
        )
        if plot is not None:
            plot.write_bytes(render_png(explanation))
    except (MinerlensError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        sys.stdout.write(explanation.model_dump_json(indent=2) + "\n")
        return
    w = tw.windows[chosen]
    out = make_console(highlight=False)
    out.print(f"{file} window {chosen} ({explanation.window_id}, pod {w.pod_name or w.pod_uid}, {w.count} syscalls)")
    verdict = "MINER" if explanation.miner else "not a miner"
    out.print(f"score {explanation.score:.4f} vs threshold {explanation.threshold:.4f}: {verdict}")
    out.print(f"{explanation.method} ({explanation.params.get('unit', '')}), {explanation.cost_ms:.0f} ms:")
    for c in explanation.contributions:
        arrow = "+" if c.direction == "toward_miner" else "-"
        out.print(f"  {arrow} {abs(c.contribution):8.4f}  {c.text}", markup=False)
    out.print("")
    out.print(explanation.summary, markup=False)
    if plot is not None:
        out.print(f"plot: {plot}")


# ---- explain-quality --------------------------------------------------------------------------------


def explain_quality_cmd(
    data: Annotated[list[Path], typer.Option("--data", help="lab dataset directory")],
    models: Annotated[
        list[Path], typer.Option("--model", help="feature model artifact (repeat): explained with SHAP and LIME")
    ],
    ae_model: Annotated[
        list[Path] | None, typer.Option("--ae-model", help="LSTM-autoencoder artifact (repeat)")
    ] = None,
    out: Annotated[Path, typer.Option(help="directory for explanations.md and explanations.json")] = Path(
        "docs/reports"
    ),
    windows: Annotated[int, typer.Option(help="flagged windows per model for faithfulness and cost")] = 40,
    pairs: Annotated[int, typer.Option(help="neighbouring-window pairs per model for stability")] = 30,
    methods: Annotated[str, typer.Option(help="methods for feature models")] = "shap,lime",
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Faithfulness (deletion/insertion), stability and cost of SHAP, LIME and LSTM-AE explanations."""
    try:
        from minerlens_training.explain.quality import QualityConfig, measure_all
        from minerlens_training.explain.quality_report import write_quality_report

        cfg = QualityConfig(
            windows=windows,
            pairs=pairs,
            methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
            seed=seed,
        )
        result = measure_all(data, models, ae_model or [], cfg, progress=lambda m: console.print(f"[dim]{m}[/]"))
        js, md = write_quality_report(result, out)
    except (MinerlensError, ValueError) as exc:
        raise _fail(str(exc)) from None
    console.print(f"[green]ok[/]: {md} and {js}")


def register(app: typer.Typer) -> None:
    """``minerlens.commands`` entry point: ``minerlens score``, ``explain`` and ``explain-quality``."""
    app.command("score")(score_cmd)
    app.command("explain")(explain_cmd)
    app.command("explain-quality")(explain_quality_cmd)
