"""Run the collector service: settings -> source -> Collector -> HTTP port, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket

from minerlens_core.http_probes import probe_app, serve
from minerlens_core.settings import IdentitySettings, KafkaSettings
from minerlens_core.syscalls import host_arch

from minerlens_collector.agent.pod_registry import LocalPodRegistry
from minerlens_collector.agent.service import Collector
from minerlens_collector.agent.settings import CollectorSettings
from minerlens_collector.agent.source import choose_source

log = logging.getLogger(__name__)


async def run_collector(
    settings: CollectorSettings,
    kafka: KafkaSettings,
    identity: IdentitySettings,
    *,
    seconds: float | None = None,
) -> Collector:
    node = identity.node_name or socket.gethostname()
    choice = choose_source(
        settings.source,
        instance=f"minerlens-{os.getpid()}",
        buffer_kb=settings.buffer_kb,
        cgroup_root=settings.cgroup_root,
        ebpf_in_auto=settings.ebpf_in_auto,
        ebpf_sample_budget=settings.ebpf_sample_budget,
    )
    source = choice.source
    metadata = None
    if settings.k8s_enrichment:
        from minerlens_collector.agent.k8s_metadata import PodMetadataCache

        metadata = PodMetadataCache(node)  # pod names and labels, and each container's image
        await metadata.start()
    collector = Collector(
        settings,
        kafka,
        source=source,
        source_reason=choice.reason,
        node=node,
        cluster=identity.cluster,
        arch=host_arch(),
        topic=settings.topic,
        pod_lookup=metadata.lookup if metadata else LocalPodRegistry(settings.local_pod_registry).lookup,
        image_lookup=metadata.container_image if metadata else None,  # emulated pods: no image, none invented
    )
    probes = probe_app(collector.metrics.registry, collector.health)
    runner, port = await serve(probes, settings.http_host, settings.http_port)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, collector.stop)
    if seconds is not None:
        loop.call_later(seconds, collector.stop)
    log.info(
        "collector on node %s: source=%s (%s) kafka=%s http=%s:%d",
        node,
        source.name,
        choice.reason,
        kafka.bootstrap,
        settings.http_host,
        port,
    )
    try:
        await collector.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        if metadata is not None:
            await metadata.stop()
    return collector
