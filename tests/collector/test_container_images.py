"""Container images from the Kubernetes API into the envelope: pod objects -> container id -> image, kept up to
date by the metadata cache's list and watch (the fake API server of test_k8s_metadata), and the batches and
resource samples of a container carrying its image; emulated pods (no API) carry none."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from minerlens_collector.agent.batcher import Batcher
from minerlens_collector.agent.container_images import ContainerImages, pod_images
from minerlens_collector.agent.k8s_metadata import PodMetadataCache
from minerlens_collector.agent.service import Collector
from minerlens_collector.agent.settings import CollectorSettings
from minerlens_collector.tools.local_pod import LocalPod
from minerlens_core.schemas import ContainerImage, decode_syscall_stream
from minerlens_core.settings import KafkaSettings
from minerlens_core.syscalls import host_arch

from tests.collector.test_batcher import CID, UID_A, UID_B, _batcher, _events, _proc
from tests.collector.test_k8s_metadata import (
    CID_A,
    CID_A_OLD,
    NODE,
    FakeKubeApi,
    api,  # noqa: F401 - fixture
    kubeconfig,  # noqa: F401 - fixture
    pod,
    until,
)
from tests.collector.test_k8s_metadata import (
    UID_B as API_UID_B,
)
from tests.collector.test_service_resources import IdleSource

DIGEST = "sha256:" + "ab" * 32
CID_SIDECAR = "5" * 64


def _with_images(
    obj: dict[str, Any], image: str = "docker.io/library/nginx:1.25.3", sidecar: str = CID_SIDECAR
) -> dict[str, Any]:
    """``pod()`` of test_k8s_metadata with the image fields the kubelet reports, and a sidecar container."""
    status = obj["status"]
    for cs in status.get("containerStatuses", []):
        cs["image"] = image
        cs["imageID"] = f"docker.io/library/nginx@{DIGEST}"
    if "containerStatuses" in status:
        status["containerStatuses"].append(
            {"name": "sidecar", "containerID": f"cri-o://{sidecar}", "image": DIGEST, "imageID": DIGEST}
        )
        obj["spec"]["containers"].append({"name": "sidecar", "image": "ghcr.io/org/proxy:v2"})
    return obj


def test_pod_images_reads_the_container_statuses() -> None:
    images = pod_images(_with_images(pod("u", "web", {}, cid=CID_A)))
    assert images == {
        CID_A: ContainerImage(name="docker.io/library/nginx", tag="1.25.3", digest=DIGEST),
        # the runtime reported only an id as the image: the name comes from the pod's spec
        CID_SIDECAR: ContainerImage(name="ghcr.io/org/proxy", tag="v2", digest=DIGEST),
    }
    assert CID_A_OLD not in images, "a previous run's image is not known for sure: left out"


def test_pod_images_leaves_out_what_it_cannot_tell() -> None:
    obj = pod("u", "web", {}, cid=CID_A)  # no image fields in the status, "busybox" in the spec
    assert pod_images(obj) == {CID_A: ContainerImage(name="busybox")}
    obj["spec"]["containers"] = []
    assert pod_images(obj) == {}, "neither status nor spec names it: none, never a guess"
    waiting = pod("u", "web", {})  # no container started yet: no container id
    waiting["status"]["containerStatuses"] = [{"name": "app", "image": "nginx:1", "imageID": ""}]
    assert pod_images(waiting) == {}
    assert pod_images({"status": {"containerStatuses": ["junk", {"containerID": 7}]}}) == {}


def test_container_images_follow_pod_updates_and_deletions() -> None:
    idx = ContainerImages()
    idx.update("u1", _with_images(pod("u1", "web", {}, cid=CID_A)))
    assert idx.lookup(f"containerd://{CID_A}") == idx.lookup(CID_A)
    assert idx.lookup(CID_A) is not None
    assert len(idx) == 2
    replaced = pod("u1", "web", {}, cid="9" * 64)  # the container restarted under a new id
    replaced["status"]["containerStatuses"][0]["image"] = "nginx:1.26"
    idx.update("u1", replaced)
    assert idx.lookup(CID_A) is None
    assert idx.lookup(CID_SIDECAR) is None
    assert idx.lookup("9" * 64) == ContainerImage(name="nginx", tag="1.26")
    idx.forget("u1")
    assert len(idx) == 0
    assert idx.lookup("") is None


async def test_the_metadata_cache_keeps_images_from_list_and_watch(api: FakeKubeApi, kubeconfig: str) -> None:  # noqa: F811
    api.pods[UID_A] = _with_images(pod(UID_A, "miner", {"app": "web"}, rv=90, cid=CID_A))
    cache = PodMetadataCache(NODE, kubeconfig=kubeconfig, deleted_grace_s=0.2)
    await cache.start()
    try:
        assert cache.lookup(UID_A) is not None, "still the metadata cache: names and labels"
        assert cache.container_image(CID_A) == ContainerImage(
            name="docker.io/library/nginx", tag="1.25.3", digest=DIGEST
        )
        assert cache.container_image(f"containerd://{CID_SIDECAR}") is not None
        assert cache.container_image("f" * 64) is None
        assert cache.container_image("") is None
        await until(lambda: api.watches)
        api.send("ADDED", _with_images(pod(API_UID_B, "other", {}, rv=101, cid="7" * 64), "quay.io/x/y:3", "8" * 64))
        await until(lambda: cache.container_image("7" * 64) is not None)
        assert cache.container_image("7" * 64) == ContainerImage(name="quay.io/x/y", tag="3", digest=DIGEST)
        api.send("DELETED", _with_images(pod(UID_A, "miner", {}, rv=102, cid=CID_A)))
        await until(lambda: cache.watch_events == 2)
        assert cache.container_image(CID_A) is not None, "late syscalls of a deleted pod keep its image (grace)"
        await asyncio.sleep(0.25)
        assert cache.container_image(CID_A) is None
        assert len(cache.images) == 2  # pod B's two containers
    finally:
        await cache.stop()


def test_batches_carry_the_image_of_their_container(tmp_path: Path) -> None:
    image = ContainerImage(name="docker.io/library/nginx", tag="1.25.3")
    looked_up: list[str] = []

    def lookup(cid: str) -> ContainerImage | None:
        looked_up.append(cid)
        return image if cid == CID else None

    b: Batcher = _batcher(_proc(tmp_path), image_lookup=lookup, include_node=True)
    b.add(_events([100, 200, 300], [0, 1, 2]))
    out = {x.envelope.pod.uid if x.envelope.pod else "node": x for x in b.flush(force=True)}
    assert out[UID_A].envelope.container_image == image
    assert out[UID_B].envelope.container_image == image
    assert out["node"].envelope.container_image is None, "no container, no lookup"
    assert set(looked_up) == {CID}
    assert decode_syscall_stream(out[UID_A].model_dump_json()) == out[UID_A]


def test_emulated_pods_carry_no_image(tmp_path: Path) -> None:
    b = _batcher(_proc(tmp_path))  # no image lookup: the collector without a Kubernetes API
    b.add(_events([100], [0]))
    (batch,) = b.flush(force=True)
    assert batch.envelope.container_image is None
    assert "container_image" not in batch.model_dump_json()


@pytest.mark.kernel
async def test_resource_samples_carry_the_image_too() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create cgroups")
    image = ContainerImage(name="ghcr.io/org/app", tag="7")
    with LocalPod("shop", "imaged", driver="systemd") as p:
        collector = Collector(
            CollectorSettings(http_port=0),
            KafkaSettings(bootstrap="127.0.0.1:1"),
            source=IdleSource(),
            node="n1",
            cluster="c",
            arch=host_arch(),
            image_lookup=lambda cid: image if cid == p.container_id else None,
        )
        p.spawn(["sleep", "5"])
        collector.reseed()
        assert await collector.sample_resources() >= 1
    mine = [decode_syscall_stream(i.value) for i in collector.spool.peek(10_000) if i.key == p.uid.encode()]
    assert mine
    assert all(m.envelope.container_image == image for m in mine)
