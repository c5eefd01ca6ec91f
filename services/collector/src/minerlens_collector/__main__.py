"""Container entry point: ``python -m minerlens_collector`` runs the collector service."""

import asyncio

from minerlens_core.logs import configure_logging
from minerlens_core.settings import IdentitySettings, KafkaSettings

from minerlens_collector.agent.runner import run_collector
from minerlens_collector.agent.settings import CollectorSettings

if __name__ == "__main__":
    configure_logging("collector")
    asyncio.run(run_collector(CollectorSettings(), KafkaSettings(), IdentitySettings()))
