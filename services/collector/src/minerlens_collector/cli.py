"""Collector commands of the ``minerlens`` CLI: ``collector run`` (the agent, what the DaemonSet runs) next to
the dev tools' ``capture``, ``pod run``, ``collector replay`` and ``collector watch`` (``tools.cli``)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from minerlens_core.settings import IdentitySettings, KafkaSettings
from minerlens_core.terminal import make_console

from minerlens_collector.agent.settings import CollectorSettings
from minerlens_collector.tools import cli as tools

console = make_console(stderr=True)

collector_app = typer.Typer(help="The per-node collector service.", no_args_is_help=True)


def collector_run(
    seconds: Annotated[float | None, typer.Option(help="stop after this long (default: until SIGTERM)")] = None,
) -> None:
    """Run the collector service (configured by MINERLENS_COLLECTOR_* / MINERLENS_KAFKA_* variables)."""
    from minerlens_collector.agent.runner import run_collector

    c = asyncio.run(run_collector(CollectorSettings(), KafkaSettings(), IdentitySettings(), seconds=seconds))
    s = c.batcher.stats
    console.print(
        f"captured {s.events_in} events, batched {s.events_batched} in {s.batches} batches, "
        f"published {c.publisher.sent_events}, unattributed {s.unattributed}, "
        f"spool dropped {c.spool.dropped_events}"
    )


collector_app.command("replay")(tools.collector_replay)
collector_app.command("run")(collector_run)
collector_app.command("watch")(tools.collector_watch)


def register(app: typer.Typer) -> None:
    app.command("capture")(tools.capture)
    app.add_typer(tools.pod_app, name="pod")
    app.add_typer(collector_app, name="collector")
