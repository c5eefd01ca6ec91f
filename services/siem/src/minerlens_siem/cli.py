"""`minerlens siem ...` commands: run the exporter, convert OCSF findings offline."""

from __future__ import annotations

import asyncio
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from minerlens_siem.settings import SiemSettings

siem_app = typer.Typer(help="SIEM exporters: OCSF alerts to ECS, CEF over syslog, Splunk HEC.", no_args_is_help=True)


class OutputChoice(StrEnum):
    ecs = "ecs"
    cef_syslog = "cef-syslog"
    splunk_hec = "splunk-hec"
    stdout = "stdout"
    falcosidekick = "falcosidekick"
    alertmanager = "alertmanager"


class ConvertChoice(StrEnum):
    ecs = "ecs"
    cef = "cef"
    hec = "hec"


def _settings(**overrides: object) -> SiemSettings:
    try:
        return SiemSettings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            message = str(err["msg"]).removeprefix("Value error, ")
            typer.echo(f"invalid configuration ({where}): {message}", err=True)
        raise typer.Exit(2) from None


@siem_app.command("run")
def run(
    output: Annotated[OutputChoice | None, typer.Option(help="where alerts go (default MINERLENS_SIEM_OUTPUT)")] = None,
    seconds: Annotated[float | None, typer.Option(help="stop after this long (default: until SIGTERM)")] = None,
    group_id: Annotated[str | None, typer.Option(help="consumer group (default minerlens-siem-<output>)")] = None,
    topic: Annotated[str | None, typer.Option(help="alerts topic")] = None,
) -> None:
    """Export the alerts topic to a SIEM (at-least-once; settings from MINERLENS_SIEM_* / MINERLENS_KAFKA_*)."""
    from minerlens_core.settings import KafkaSettings

    from minerlens_siem.service import run_service

    settings = _settings(output=output.value if output else None, group_id=group_id, topic=topic)
    consumer, report = asyncio.run(run_service(settings, KafkaSettings(), seconds=seconds))
    typer.echo(
        f"exported {consumer.exported} alerts to {settings.output}, committed {consumer.committed} messages, "
        f"dead-lettered {consumer.dead_lettered}; undelivered at shutdown: {len(report.lost)}",
        err=True,
    )


def _documents(text: str) -> list[bytes]:
    """A JSON object, a JSON array of objects, or JSON lines -> one encoded message each."""
    stripped = text.strip()
    if not stripped:
        return []
    try:
        whole = json.loads(stripped)
    except json.JSONDecodeError:
        return [line.encode() for line in text.splitlines() if line.strip()]
    items = whole if isinstance(whole, list) else [whole]
    return [json.dumps(item).encode() for item in items]


@siem_app.command("convert")
def convert(
    file: Annotated[str, typer.Argument(help="OCSF Detection Finding JSON (object, array or JSON lines); - = stdin")],
    to: Annotated[ConvertChoice, typer.Option("--to", help="ecs | cef | hec (event envelope)")] = ConvertChoice.ecs,
) -> None:
    """Print the ECS document, CEF line or HEC event of each finding (the mappings the exporter uses)."""
    from minerlens_siem.cef import view_to_cef
    from minerlens_siem.decode import Alert, decode_alert
    from minerlens_siem.ecs import view_to_ecs
    from minerlens_siem.hec import hec_event

    text = sys.stdin.read() if file == "-" else Path(file).read_text()
    bad = 0
    for n, raw in enumerate(_documents(text), start=1):
        outcome = decode_alert(raw)
        if not isinstance(outcome, Alert):
            bad += 1
            detail = getattr(outcome, "error", "")
            typer.echo(f"finding {n}: {outcome.reason}: {str(detail)[:500]}", err=True)
            continue
        if to is ConvertChoice.ecs:
            typer.echo(json.dumps(view_to_ecs(outcome.view), ensure_ascii=False))
        elif to is ConvertChoice.cef:
            typer.echo(view_to_cef(outcome.view))
        else:
            typer.echo(hec_event(outcome.view, outcome.document).decode())
    if bad:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(siem_app, name="siem")
