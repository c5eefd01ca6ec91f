"""Kubernetes names (DNS-1123) and how a pod is addressed in the store and in URLs."""

from __future__ import annotations

import re
from dataclasses import dataclass

from minerlens_core.schemas.envelope import PodRef

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A namespace: at most 63 characters."""
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""A pod name: at most 253 characters."""
LABEL_MAX, SUBDOMAIN_MAX = 63, 253
WINDOW_ID = r"^[\x21-\x7e]{1,512}$"
"""Window ids (``<pod uid>/<container>/<policy>/<index>``): printable ASCII, no spaces."""
UID_NAMESPACE = "uid"
"""Pods known only by their uid (no API server enrichment) are stored as ``uid/<pod uid>``."""

_LABEL = re.compile(DNS1123_LABEL)
_SUBDOMAIN = re.compile(DNS1123_SUBDOMAIN)


def is_label(value: str) -> bool:
    return len(value) <= LABEL_MAX and bool(_LABEL.match(value))


def is_subdomain(value: str) -> bool:
    return len(value) <= SUBDOMAIN_MAX and bool(_SUBDOMAIN.match(value))


@dataclass(frozen=True, order=True)
class PodKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> PodKey:
        namespace, _, name = text.partition("/")
        return cls(namespace, name)

    @classmethod
    def of(cls, pod: PodRef | None) -> PodKey | None:
        """Where a message's pod is stored: ``namespace/name``, else ``uid/<uid>``, else None (node-level)."""
        if pod is None:
            return None
        if pod.namespace and pod.name:
            return cls(pod.namespace, pod.name)
        return cls(UID_NAMESPACE, pod.uid)
