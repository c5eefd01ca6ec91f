"""Start a featurizer worker: settings -> input topic partitions -> Faust app -> ``faust.Worker``.

SIGTERM and SIGINT stop the worker at any moment: before Faust runs (looking up the input topic,
building the app) the process exits at once (nothing was consumed); once it runs, Faust's graceful
stop flushes, commits and leaves the group, and a watchdog ends the process should that take longer
than ``shutdown_timeout_s`` (the held messages are then replayed by the next owner: nothing is lost).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from minerlens_core.errors import ConfigurationError
from minerlens_core.settings import KafkaSettings

from minerlens_featurizer.app import FeaturizerApp
from minerlens_featurizer.settings import FeaturizerSettings

log = logging.getLogger(__name__)


async def input_partitions(settings: FeaturizerSettings, kafka: KafkaSettings) -> int:
    """Partition count of the input topic, creating the topic (``create_partitions``) when it is missing.

    The state changelog and the control topic get the same count: Faust co-partitions them with the
    input, so a pod's batches, its state and its ticks are always handled by the same worker.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, client_id=f"{kafka.client_id}-featurizer-admin")
    await admin.start()
    try:
        if settings.input_topic not in await admin.list_topics():
            log.info("creating %s with %d partitions", settings.input_topic, settings.create_partitions)
            await admin.create_topics(
                [NewTopic(settings.input_topic, settings.create_partitions, settings.replication_factor)]
            )
        for _ in range(50):
            described = await admin.describe_topics([settings.input_topic])
            parts = described[0].get("partitions") or [] if described else []
            if parts:
                break
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    have = len(parts)
    if have == 0:
        msg = f"topic {settings.input_topic} has no partitions (broker {kafka.bootstrap})"
        raise ConfigurationError(msg)
    if settings.partitions and settings.partitions != have:
        msg = f"MINERLENS_FEATURIZER_PARTITIONS={settings.partitions} but {settings.input_topic} has {have}"
        raise ConfigurationError(msg)
    return have


def build(settings: FeaturizerSettings, kafka: KafkaSettings) -> FeaturizerApp:
    partitions = asyncio.run(input_partitions(settings, kafka))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return FeaturizerApp(settings, kafka, partitions=partitions)


EXIT_FORCED = 3
"""exit status when the graceful stop did not finish within ``shutdown_timeout_s``"""


def _exit_now(signum: int, frame: FrameType | None) -> None:
    """A signal before Faust's own handlers are installed (they are, first thing, when the worker starts):
    nothing was consumed yet, so the process ends at once (unwinding a half-started worker can hang)."""
    log.info("signal %d before the worker runs: exiting", signum)
    logging.shutdown()
    os._exit(0)


def _watchdog(seconds: float) -> None:
    """End the process after ``seconds`` unless it exits before (a thread: works even if the loop is stuck)."""

    def expire() -> None:
        log.error("the worker did not stop within %.0f s of the signal: exiting now", seconds)
        logging.shutdown()
        os._exit(EXIT_FORCED)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def run(settings: FeaturizerSettings, kafka: KafkaSettings) -> None:
    """Run one worker until SIGTERM/SIGINT (graceful: flushes, commits, leaves the group)."""
    import faust

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_now)
    fa = build(settings, kafka)
    log.info(
        "featurizer %s: %s -> %s (%d partitions, spec %s, store %s)",
        settings.app_id,
        settings.input_topic,
        settings.output_topic,
        fa.partitions,
        fa.served.tag,
        settings.store,
    )

    class Worker(faust.Worker):
        def _schedule_shutdown(self, signum: Any) -> None:
            if not self._signal_stop_time:
                fa.stopping()
                _watchdog(settings.shutdown_timeout_s)
            super()._schedule_shutdown(signum)

    worker = Worker(fa.app, loglevel=settings.log_level.upper(), quiet=True, redirect_stdouts=False)
    sys.stdout.flush()
    worker.execute_from_commandline()
