"""Container images from the Kubernetes API: runtime container id -> ``ContainerImage``, for the envelope.

A pod's ``status.containerStatuses[]`` (and the init and ephemeral ones) name, per container, the runtime id
(``containerd://<id>``), the image (``image``: the reference the kubelet resolved, e.g.
``docker.io/library/nginx:1.25``) and ``imageID`` (``docker.io/library/nginx@sha256:...``); ``spec.containers[]``
holds what the pod asked for, used when the status' ``image`` names no repository (some runtimes report the
image id there). A container whose image cannot be told is left out: the envelope then carries none, never a
guess. Emulated pods (no API server) have no image.

``k8s_metadata.PodMetadataCache`` owns a ``ContainerImages`` and keeps it up to date from its list and watch
(``update`` on every pod object, ``forget`` when a pod is evicted); ``container_image(container_id)`` asks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from minerlens_core.schemas import ContainerImage

STATUS_KEYS = ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses")
"""The keys of a pod's ``status`` that list container statuses (init, regular, ephemeral)."""
_SPEC_KEYS = ("initContainers", "containers", "ephemeralContainers")


def strip_runtime(container_id: str) -> str:
    """``containerd://<id>`` (or ``cri-o://``, ``docker://``) -> ``<id>``."""
    return container_id.rpartition("://")[2]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def pod_images(pod: Mapping[str, Any]) -> dict[str, ContainerImage]:
    """Runtime container id (bare) -> image, for every container of a pod object (a JSON dict of the API)."""
    spec = pod.get("spec") or {}
    asked = {
        _text(c.get("name")): _text(c.get("image"))
        for key in _SPEC_KEYS
        for c in spec.get(key) or []
        if isinstance(c, Mapping)
    }
    out: dict[str, ContainerImage] = {}
    status = pod.get("status") or {}
    for key in STATUS_KEYS:
        for cs in status.get(key) or []:
            if not isinstance(cs, Mapping):
                continue
            image_id = _text(cs.get("imageID"))
            image = ContainerImage.parse(_text(cs.get("image")), image_id) or ContainerImage.parse(
                asked.get(_text(cs.get("name")), ""), image_id
            )
            cid = strip_runtime(_text(cs.get("containerID")))
            if image is not None and cid:
                out[cid] = image
    return out


class ContainerImages:
    """Runtime container id -> image of this node's pods, replaced per pod on every update, dropped with the pod."""

    def __init__(self) -> None:
        self._by_container: dict[str, tuple[str, ContainerImage]] = {}  # container id -> (pod uid, image)
        self._by_pod: dict[str, frozenset[str]] = {}

    def __len__(self) -> int:
        return len(self._by_container)

    def update(self, pod_uid: str, pod: Mapping[str, Any]) -> None:
        images = pod_images(pod)
        self._drop(pod_uid, self._by_pod.get(pod_uid, frozenset()) - images.keys())
        self._by_container.update((cid, (pod_uid, image)) for cid, image in images.items())
        self._by_pod[pod_uid] = frozenset(images)

    def forget(self, pod_uid: str) -> None:
        self._drop(pod_uid, self._by_pod.pop(pod_uid, frozenset()))

    def _drop(self, pod_uid: str, container_ids: frozenset[str]) -> None:
        for cid in container_ids:
            if self._by_container.get(cid, ("",))[0] == pod_uid:  # not if another pod has claimed the id since
                del self._by_container[cid]

    def lookup(self, container_id: str) -> ContainerImage | None:
        """The image of a container id, bare (``<id>``) or as in the API (``containerd://<id>``)."""
        hit = self._by_container.get(strip_runtime(container_id)) if container_id else None
        return hit[1] if hit is not None else None
