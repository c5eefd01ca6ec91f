"""`minerlens responder ...`: run the service, check a policy, decide one alert offline."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from minerlens_core.errors import ConfigurationError
from minerlens_core.schemas.ocsf import decode_finding
from minerlens_core.settings import IdentitySettings, KafkaSettings
from minerlens_core.terminal import JsonOpt, make_console, print_rows
from pydantic import ValidationError

from minerlens_responder.policy import Policy, load_policy
from minerlens_responder.settings import ResponderSettings

console = make_console(stderr=True)
log = logging.getLogger(__name__)
responder_app = typer.Typer(help="Policy-driven response to alerts (dry-run by default).", no_args_is_help=True)


class ModeChoice(StrEnum):
    dry_run = "dry-run"
    server_dry_run = "server-dry-run"
    enforce = "enforce"


def _policy(path: Path) -> Policy:
    try:
        return load_policy(path)
    except ConfigurationError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


@responder_app.command("run")
def run(
    policy: Annotated[Path | None, typer.Option(help="policy file (default MINERLENS_RESPONDER_POLICY_FILE)")] = None,
    mode: Annotated[ModeChoice | None, typer.Option(help="override the policy's mode")] = None,
    seconds: Annotated[float | None, typer.Option(help="stop after this long (default: until SIGTERM)")] = None,
) -> None:
    """Consume alerts, decide per the policy, act (unless dry-run), audit every decision."""
    from minerlens_responder.kube_api import KubeApi
    from minerlens_responder.responder import Responder
    from minerlens_responder.service import ResponderService

    settings = ResponderSettings()
    pol = _policy(policy or settings.policy_file)
    effective = mode.value if mode else settings.mode or pol.mode
    identity = IdentitySettings()

    async def main() -> None:
        api = None
        if effective != "dry-run":
            api = await KubeApi.connect(settings.kubeconfig, request_timeout_s=settings.request_timeout_s)
        try:
            responder = Responder(
                pol,
                mode=effective,
                api=api,
                cluster=identity.cluster,
                instance=socket.gethostname(),
                own_namespace=settings.own_namespace,
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await ResponderService(responder, settings, KafkaSettings()).run(seconds=seconds, stop=stop)
        finally:
            if api is not None:
                await api.close()

    console.print(f"responder: mode [bold]{effective}[/], {len(pol.rules)} rules")
    try:
        asyncio.run(main())
    except ConfigurationError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


RULE_COLUMNS = ["rule", "min severity", "min score", "namespaces", "pod labels", "actions"]


@responder_app.command("check-policy")
def check_policy(policy: Annotated[Path, typer.Argument(help="policy file")], as_json: JsonOpt = False) -> None:
    """Validate a policy file and print what it does (with --json: its rules, in order, as a JSON array)."""
    pol = _policy(policy)
    ns = pol.namespaces
    console.print(f"[green]valid[/]: mode {pol.mode}, allow {list(ns.allow)}, deny {list(ns.deny)}")
    if as_json:
        rows = [
            [r.name, r.match.min_severity, r.match.min_score, list(r.match.namespaces), r.match.pod_labels,
             [a.value for a in r.ordered_actions()]]
            for r in pol.rules
        ]  # fmt: skip
        print_rows(RULE_COLUMNS, rows, as_json=True)
        return
    for rule in pol.rules:
        m = rule.match
        console.print(
            f"  {rule.name}: severity >= {m.min_severity}, score >= {m.min_score}, namespaces {list(m.namespaces)}, "
            f"labels {m.pod_labels or '-'} -> {', '.join(a.value for a in rule.ordered_actions())}"
        )


@responder_app.command("decide")
def decide(
    alert: Annotated[Path, typer.Argument(help="an alert (OCSF Detection Finding JSON) file, '-' for stdin")],
    policy: Annotated[Path, typer.Option(help="policy file")],
) -> None:
    """Print the audit record the policy gives an alert, in dry-run (nothing is sent to any cluster)."""
    from minerlens_responder.responder import Responder

    pol = _policy(policy)
    raw = sys.stdin.read() if str(alert) == "-" else alert.read_text()
    try:
        finding = decode_finding(raw)
    except (ValidationError, ValueError) as exc:
        console.print(f"[red]not an alert[/]: {exc}")
        raise typer.Exit(2) from None
    responder = Responder(pol, mode="dry-run", own_namespace=ResponderSettings().own_namespace)
    record = asyncio.run(responder.handle(finding))
    typer.echo(json.dumps(record.model_dump(mode="json"), indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(responder_app, name="responder")
