"""Container entry point: ``python -m minerlens_siem`` runs the exporter (configured by MINERLENS_SIEM_*)."""

import asyncio

from minerlens_core.logs import configure_logging
from minerlens_core.settings import KafkaSettings

from minerlens_siem.service import run_service
from minerlens_siem.settings import SiemSettings

if __name__ == "__main__":
    configure_logging("siem")
    asyncio.run(run_service(SiemSettings(), KafkaSettings()))
