"""Pod identity read from a trace (Tetragon's pod fields, sysdig's container id), checked against the contract.

An imported trace is replayed onto the syscall topic (``minerlens collector replay``), so the pod
identity it records must be what the message contract accepts (``schemas.bounds``): a Kubernetes uid,
namespace, pod name and container id, or empty. A line naming anything else is malformed.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import TypeAdapter, ValidationError

from minerlens_core.schemas.bounds import ContainerIdOrEmpty, K8sNameOrEmpty, K8sNamespaceOrEmpty, PodUid

_UID: TypeAdapter[str] = TypeAdapter(PodUid)
_NAMESPACE: TypeAdapter[str] = TypeAdapter(K8sNamespaceOrEmpty)
_NAME: TypeAdapter[str] = TypeAdapter(K8sNameOrEmpty)
_CONTAINER: TypeAdapter[str] = TypeAdapter(ContainerIdOrEmpty)


_LIMITS = {"pod uid": 64, "pod namespace": 63, "pod name": 253, "container id": 128}


def check_identity(pod_uid: str, namespace: str, pod_name: str, container_id: str) -> str:
    """ "" if the four values are valid (each may be empty), else the reason in a few words."""
    for (what, limit), value in zip(_LIMITS.items(), (pod_uid, namespace, pod_name, container_id), strict=True):
        if len(value) > limit:
            return f"{what} longer than {limit} characters"
    return _check(pod_uid, namespace, pod_name, container_id)


@lru_cache(maxsize=4096)
def _check(pod_uid: str, namespace: str, pod_name: str, container_id: str) -> str:
    checks = (
        ("pod uid", _UID, pod_uid),
        ("pod namespace", _NAMESPACE, namespace),
        ("pod name", _NAME, pod_name),
        ("container id", _CONTAINER, container_id),
    )
    for what, adapter, value in checks:
        if not value:
            continue
        try:
            adapter.validate_python(value)
        except ValidationError:
            return f"{what} {value[:64]!r} is not valid in the message contract"
    return ""
