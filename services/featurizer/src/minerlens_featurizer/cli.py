"""`minerlens featurizer ...` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from minerlens_core.terminal import JsonOpt


def run_cmd(
    model_dir: Annotated[
        Path | None, typer.Option(help="model artifact whose spec to serve (env MINERLENS_FEATURIZER_MODEL_DIR)")
    ] = None,
    store: Annotated[str | None, typer.Option(help="memory:// or rocksdb:// (env MINERLENS_FEATURIZER_STORE)")] = None,
    web_port: Annotated[int | None, typer.Option(help="/metrics, /healthz, /readyz port")] = None,
) -> None:
    """Run a featurizer worker: syscall batches -> feature windows (Faust; scale out with more workers)."""
    from minerlens_core.errors import MinerlensError
    from minerlens_core.settings import KafkaSettings

    from minerlens_featurizer.service import run
    from minerlens_featurizer.settings import FeaturizerSettings

    overrides: dict[str, object] = {}
    if model_dir is not None:
        overrides["model_dir"] = model_dir
    if store is not None:
        overrides["store"] = store
    if web_port is not None:
        overrides["web_port"] = web_port
    settings = FeaturizerSettings(**overrides)  # type: ignore[arg-type]
    try:
        run(settings, KafkaSettings())
    except MinerlensError as exc:
        typer.echo(f"featurizer: {exc}", err=True)
        raise typer.Exit(2) from None


def spec_cmd(
    model_dir: Annotated[Path | None, typer.Option(help="model artifact (default: 1 s time windows)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the feature spec the featurizer would serve (policy tag, digest, dimension)."""
    from minerlens_core.terminal import print_rows

    from minerlens_featurizer.settings import FeaturizerSettings
    from minerlens_featurizer.spec import served_spec

    settings = FeaturizerSettings(model_dir=model_dir) if model_dir is not None else FeaturizerSettings()
    served = served_spec(settings)
    if as_json:
        model = {"name": served.model.name, "version": served.model.version} if served.model else None
        row = [served.tag, served.spec.digest, served.spec.dim, served.spec.version, model]
        print_rows(["policy", "digest", "dim", "feature version", "model"], [row], as_json=True)
        return
    model_text = f"{served.model.name} {served.model.version}" if served.model else "(default)"
    typer.echo(f"{served.tag} digest={served.spec.digest} dim={served.spec.dim} model={model_text}")


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="The streaming featurizer (Faust): syscall batches -> windows.", no_args_is_help=True)
    sub.command("run")(run_cmd)
    sub.command("spec")(spec_cmd)
    app.add_typer(sub, name="featurizer")
