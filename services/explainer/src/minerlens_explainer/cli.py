"""``minerlens explainer run | ingest | token | feedback-export``."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from minerlens_core.errors import MinerlensError
from minerlens_core.terminal import make_console
from pydantic import ValidationError

from minerlens_explainer.auth import Role

if TYPE_CHECKING:
    from minerlens_explainer.settings import ExplainerSettings

console = make_console(stderr=True)


def _settings(models: list[Path] | None, tokens_file: Path | None, **overrides: object) -> ExplainerSettings:
    """Settings from the environment, command-line options winning; the options are also exported to the
    environment, so that uvicorn worker processes (which build the app from it) see them."""
    from minerlens_explainer.settings import ExplainerSettings

    update: dict[str, object] = {k: v for k, v in overrides.items() if v is not None}
    if models:
        update["models"] = ",".join(str(m) for m in models)
    if tokens_file is not None:
        update["tokens_file"] = str(tokens_file)
    for key, value in update.items():
        os.environ[f"MINERLENS_EXPLAINER_{key.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return ExplainerSettings()


ModelsOpt = Annotated[list[Path] | None, typer.Option("--model", help="model artifact directory (repeatable)")]
TokensOpt = Annotated[Path | None, typer.Option(help="tokens file (MINERLENS_EXPLAINER_TOKENS_FILE)")]


def run(
    models: ModelsOpt = None,
    tokens_file: TokensOpt = None,
    host: Annotated[str | None, typer.Option(help="listen address (MINERLENS_EXPLAINER_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="listen port (MINERLENS_EXPLAINER_PORT)")] = None,
    redis_url: Annotated[str | None, typer.Option(help="MINERLENS_EXPLAINER_REDIS_URL")] = None,
    ingest: Annotated[bool | None, typer.Option(help="consume the Kafka topics in this process")] = None,
    http_workers: Annotated[int | None, typer.Option(help="uvicorn worker processes")] = None,
) -> None:
    """Serve the REST API (uvicorn); with ingestion on, also keep the pod store fed from Kafka."""
    import uvicorn

    from minerlens_explainer.app import create_app

    # SIGTERM: before uvicorn serves (loading models) the process exits at once; while it serves uvicorn
    # shuts down gracefully (ingestion stopped, Redis closed) and then re-raises the signal, which ends
    # here too: status 0, not "killed by SIGTERM", for a shutdown that went as asked.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        settings = _settings(models, tokens_file, host=host, port=port, redis_url=redis_url, ingest=ingest,
                             http_workers=http_workers)  # fmt: skip
        app = create_app(settings)  # checks tokens and models before serving
    except (MinerlensError, ValidationError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    common: dict[str, Any] = {"host": settings.host, "port": settings.port, "log_level": "info",
                              "access_log": False, "server_header": False, "proxy_headers": False}  # fmt: skip
    if settings.http_workers > 1:
        del app
        uvicorn.run("minerlens_explainer.app:app_from_env", factory=True, workers=settings.http_workers, **common)
    else:
        uvicorn.run(app, **common)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def ingest(
    models: ModelsOpt = None,
    tokens_file: TokensOpt = None,
    redis_url: Annotated[str | None, typer.Option(help="MINERLENS_EXPLAINER_REDIS_URL")] = None,
) -> None:
    """Only consume the windows/verdicts/alerts topics into Redis (when the API runs with --no-ingest)."""
    from minerlens_explainer.runtime import Runtime

    try:
        settings = _settings(models, tokens_file, redis_url=redis_url)
    except ValidationError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None

    async def main() -> None:
        rt = Runtime.create(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await rt.kafka_ingest().run(stop)
        finally:
            await rt.close()

    try:
        asyncio.run(main())
    except MinerlensError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


def token(role: Annotated[str, typer.Option(help="read | admin")] = "read") -> None:
    """Print a new random 'role:token' line for the tokens file."""
    if role not in ("read", "admin"):
        msg = "--role must be read or admin"
        raise typer.BadParameter(msg)
    r: Role = "admin" if role == "admin" else "read"
    typer.echo(f"{r}:{secrets.token_urlsafe(32)}")


def feedback_export(
    out: Annotated[Path, typer.Option("--out", help="JSON lines file to write")],
) -> None:
    """Write the windows operators judged (confirmed miner: 1, false positive: 0) that Redis still holds."""
    from minerlens_explainer.feedback_export import export_feedback
    from minerlens_explainer.operator_store import OperatorStore
    from minerlens_explainer.redis_link import RedisLink, RedisUnavailable
    from minerlens_explainer.settings import ExplainerSettings
    from minerlens_explainer.store import PodStore

    s = ExplainerSettings()

    async def main() -> None:
        link = RedisLink(s.redis_url, s.redis_timeout_s, s.redis_retry_s)
        pods = PodStore(link, s.key_prefix, max_windows=s.max_windows_per_pod, max_verdicts=s.max_verdicts_per_pod,
                        ttl_s=s.window_ttl_s, alert_ttl_s=s.alert_ttl_s)  # fmt: skip
        try:
            n = await export_feedback(OperatorStore(link, s.key_prefix), pods, out)
        finally:
            await link.close()
        labels = f"miner: {n.by_label.get(1, 0)}, benign: {n.by_label.get(0, 0)}; {n.missing} expired"
        console.print(f"{n.windows} labelled windows from {n.feedback} judgements written to {out} ({labels})")

    try:
        asyncio.run(main())
    except RedisUnavailable as exc:
        console.print(f"[red]error:[/] Redis is unavailable: {exc}")
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    """``minerlens.commands`` entry point: ``minerlens explainer run|ingest|token``."""
    sub = typer.Typer(help="The explainer: why was this pod flagged? (REST API, Redis cache)", no_args_is_help=True)
    sub.command("run")(run)
    sub.command("ingest")(ingest)
    sub.command("token")(token)
    sub.command("feedback-export")(feedback_export)
    app.add_typer(sub, name="explainer")
