"""Kubernetes names (DNS-1123) and how a pod is addressed in the store and in URLs.

A pod is stored and served as ``<namespace>/<name>``. Both parts are checked here, whatever produced
them (a message of any topic, an alert's free-form fields, a stored key): a namespace is a DNS-1123
label and a name a DNS-1123 subdomain, so neither holds ``/``, spaces, ``*`` or control characters and
``a/b`` + ``x`` can never read as ``a`` + ``b/x``. Pods known only by their uid live under the
namespace ``uid``; their uid must be a DNS-1123 subdomain too (Kubernetes uids are).
"""

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
MODEL_NAME = r"^[\x21-\x7e]{1,253}$"
"""Model names in query parameters: printable ASCII, no spaces."""
UID_NAMESPACE = "uid"
"""Pods known only by their uid (no API server enrichment) are stored as ``uid/<pod uid>``."""

_LABEL = re.compile(DNS1123_LABEL.strip("^$"))
_SUBDOMAIN = re.compile(DNS1123_SUBDOMAIN.strip("^$"))


class InvalidPodName(ValueError):
    """A namespace or pod name that is not a Kubernetes name: never stored, never served."""


def is_label(value: str) -> bool:
    return len(value) <= LABEL_MAX and _LABEL.fullmatch(value) is not None


def is_subdomain(value: str) -> bool:
    return len(value) <= SUBDOMAIN_MAX and _SUBDOMAIN.fullmatch(value) is not None


@dataclass(frozen=True, order=True)
class PodKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def checked(cls, namespace: str, name: str) -> PodKey:
        """The key of ``namespace``/``name``; ``InvalidPodName`` unless both are Kubernetes names."""
        if not is_label(namespace):
            msg = f"namespace {namespace[:80]!r} is not a DNS-1123 label (at most {LABEL_MAX} of [a-z0-9-])"
            raise InvalidPodName(msg)
        if not is_subdomain(name):
            msg = f"pod name {name[:80]!r} is not a DNS-1123 subdomain (at most {SUBDOMAIN_MAX} of [a-z0-9.-])"
            raise InvalidPodName(msg)
        return cls(namespace, name)

    @classmethod
    def parse(cls, text: str) -> PodKey | None:
        """A stored ``namespace/name`` member; None when it is not one (written by an older version)."""
        namespace, sep, name = text.partition("/")
        try:
            return cls.checked(namespace, name) if sep else None
        except InvalidPodName:
            return None

    @classmethod
    def of(cls, pod: PodRef | None) -> PodKey | None:
        """Where a message's pod is stored: ``namespace/name``, else ``uid/<uid>``, else None (node-level).

        ``InvalidPodName`` when the names (or the uid, for a pod known only by it) are not Kubernetes names.
        """
        if pod is None:
            return None
        if pod.namespace and pod.name:
            return cls.checked(pod.namespace, pod.name)
        return cls.checked(UID_NAMESPACE, pod.uid)
