"""``minerlens scorer run`` (the service) and ``minerlens scorer models`` (what it would serve)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer
from minerlens_core.settings import KafkaSettings
from minerlens_core.terminal import JsonOpt, make_console, print_rows

from minerlens_scorer.settings import ScorerSettings

console = make_console(stderr=True)
scorer_app = typer.Typer(help="The ONNX scorer: verdicts per window, OCSF alerts per pod.", no_args_is_help=True)


async def _serve(settings: ScorerSettings, seconds: float | None) -> dict[str, int]:
    from minerlens_scorer.service import ScorerService

    service = ScorerService(settings, KafkaSettings())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, service.stop)
    try:
        await service.run(seconds=seconds)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return service.produced


@scorer_app.command("run")
def run_cmd(
    seconds: Annotated[float | None, typer.Option(help="stop after this long (default: until SIGTERM)")] = None,
    models_dir: Annotated[Path | None, typer.Option(help="overrides MINERLENS_SCORER_MODELS_DIR")] = None,
) -> None:
    """Run the scorer service (configured by MINERLENS_SCORER_* and MINERLENS_KAFKA_* variables)."""
    settings = ScorerSettings()
    if models_dir is not None:
        settings = settings.model_copy(update={"models_dir": models_dir})
    produced = asyncio.run(_serve(settings, seconds))
    console.print(", ".join(f"{k} {v}" for k, v in produced.items()))


@scorer_app.command("models")
def models_cmd(
    models_dir: Annotated[Path | None, typer.Option(help="overrides MINERLENS_SCORER_MODELS_DIR")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify every artifact in the models directory and show which would be served (and which decides)."""
    from minerlens_scorer.model_repository import ModelRepository

    settings = ScorerSettings()
    repo = ModelRepository(models_dir or settings.models_dir, primary=settings.primary_model)
    current = repo.refresh()
    rows: list[list[object]] = []
    for m in current.models if current else ():
        status = "primary" if m is current.primary else "scoring"  # type: ignore[union-attr]
        ref = m.model.manifest
        rows.append(
            [m.directory.name, m.name, m.version, m.model.input_kind, round(m.model.threshold, 4), ref.gate,
             "yes" if m.ranker else "no", status]
        )  # fmt: skip
    for path, why in repo.refused.items():
        rows.append([path.name, None, None, None, None, None, None, f"refused: {why}"])
    columns = ["artifact", "model", "version", "input", "threshold", "gate", "reasons", "status"]
    print_rows(columns, rows, as_json=as_json)
    if current is None:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(scorer_app, name="scorer")
