"""The Kubernetes API calls the responder makes, through the official async client (kubernetes_asyncio).

Only decodes and encodes: bodies go out as the JSON the caller built, answers come back as parsed JSON
(``_preload_content=False``, no model round trip), a non-2xx answer raises :class:`KubeApiError` with
the server's Status message. Every call appends ``(method, path, status)`` to the caller's trail so the
audit record shows exactly what was sent. Writes take ``dry_run``: the server then validates, runs
admission and checks RBAC, and persists nothing (``?dryRun=All``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from minerlens_core.errors import ConfigurationError

from minerlens_responder.audit import ApiRequest

JsonObj = dict[str, Any]
ScaleKind = Literal["deployments", "statefulsets", "replicasets"]
MERGE_PATCH = "application/merge-patch+json"


class KubeApiError(Exception):
    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(f"HTTP {status} {reason}: {message}".replace("  ", " "))
        self.status = status
        self.reason = reason
        self.message = message


class KubeApi:
    """Thin adapter over kubernetes_asyncio's CoreV1/AppsV1/EventsV1/NetworkingV1 APIs."""

    def __init__(self, api_client: Any, *, request_timeout_s: float = 10.0) -> None:
        from kubernetes_asyncio import client

        self._api_client = api_client
        self._core: Any = client.CoreV1Api(api_client)
        self._apps: Any = client.AppsV1Api(api_client)
        self._events: Any = client.EventsV1Api(api_client)
        self._net: Any = client.NetworkingV1Api(api_client)
        self._timeout = request_timeout_s

    @classmethod
    async def connect(cls, kubeconfig: Path | None = None, *, request_timeout_s: float = 10.0) -> KubeApi:
        """In-cluster service account when ``KUBERNETES_SERVICE_HOST`` is set and no kubeconfig is given."""
        from kubernetes_asyncio import client, config

        cfg = client.Configuration()
        try:
            if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
                load_incluster: Any = config.load_incluster_config
                load_incluster(client_configuration=cfg)
            else:
                path = kubeconfig or Path(os.environ.get("KUBECONFIG") or Path.home() / ".kube" / "config")
                await config.load_kube_config(config_file=str(path), client_configuration=cfg, persist_config=False)
        except Exception as exc:  # any config problem is a configuration error here
            msg = f"cannot load Kubernetes API credentials ({type(exc).__name__}: {exc})"
            raise ConfigurationError(msg) from exc
        return cls(client.ApiClient(configuration=cfg), request_timeout_s=request_timeout_s)

    async def close(self) -> None:
        await self._api_client.close()

    # ---- reads ------------------------------------------------------------------------------------

    async def get_pod(self, namespace: str, name: str, trail: list[ApiRequest]) -> JsonObj:
        path = f"/api/v1/namespaces/{namespace}/pods/{name}"
        return await self._call("GET", path, trail, self._core.read_namespaced_pod, name, namespace)

    async def get_replica_set(self, namespace: str, name: str, trail: list[ApiRequest]) -> JsonObj:
        path = f"/apis/apps/v1/namespaces/{namespace}/replicasets/{name}"
        return await self._call("GET", path, trail, self._apps.read_namespaced_replica_set, name, namespace)

    async def get_scale(self, kind: ScaleKind, namespace: str, name: str, trail: list[ApiRequest]) -> JsonObj:
        path = f"/apis/apps/v1/namespaces/{namespace}/{kind}/{name}/scale"
        read = {
            "deployments": self._apps.read_namespaced_deployment_scale,
            "statefulsets": self._apps.read_namespaced_stateful_set_scale,
            "replicasets": self._apps.read_namespaced_replica_set_scale,
        }[kind]
        return await self._call("GET", path, trail, read, name, namespace)

    # ---- writes -----------------------------------------------------------------------------------

    async def patch_pod(
        self, namespace: str, name: str, patch: JsonObj, trail: list[ApiRequest], *, dry_run: bool
    ) -> JsonObj:
        path = f"/api/v1/namespaces/{namespace}/pods/{name}"
        return await self._call(
            "PATCH", path, trail, self._core.patch_namespaced_pod, name, namespace, patch,
            _content_type=MERGE_PATCH, **_dry(dry_run),
        )  # fmt: skip

    async def evict_pod(
        self, namespace: str, name: str, body: JsonObj, trail: list[ApiRequest], *, dry_run: bool
    ) -> JsonObj:
        path = f"/api/v1/namespaces/{namespace}/pods/{name}/eviction"
        create = self._core.create_namespaced_pod_eviction
        return await self._call("POST", path, trail, create, name, namespace, body, **_dry(dry_run))

    async def create_event(self, namespace: str, body: JsonObj, trail: list[ApiRequest], *, dry_run: bool) -> JsonObj:
        path = f"/apis/events.k8s.io/v1/namespaces/{namespace}/events"
        create = self._events.create_namespaced_event
        return await self._call("POST", path, trail, create, namespace, body, **_dry(dry_run))

    async def patch_scale(
        self, kind: ScaleKind, namespace: str, name: str, patch: JsonObj, trail: list[ApiRequest], *, dry_run: bool
    ) -> JsonObj:
        path = f"/apis/apps/v1/namespaces/{namespace}/{kind}/{name}/scale"
        patch_fn = {
            "deployments": self._apps.patch_namespaced_deployment_scale,
            "statefulsets": self._apps.patch_namespaced_stateful_set_scale,
            "replicasets": self._apps.patch_namespaced_replica_set_scale,
        }[kind]
        return await self._call(
            "PATCH", path, trail, patch_fn, name, namespace, patch, _content_type=MERGE_PATCH, **_dry(dry_run)
        )

    async def create_network_policy(
        self, namespace: str, body: JsonObj, trail: list[ApiRequest], *, dry_run: bool
    ) -> JsonObj:
        path = f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies"
        create = self._net.create_namespaced_network_policy
        return await self._call("POST", path, trail, create, namespace, body, **_dry(dry_run))

    # ---- plumbing ---------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        trail: list[ApiRequest],
        fn: Callable[..., Awaitable[Any]],
        *args: Any,
        **kwargs: Any,
    ) -> JsonObj:
        request = ApiRequest(method=method, path=path + ("?dryRun=All" if kwargs.get("dry_run") else ""))
        trail.append(request)
        resp = await fn(*args, _preload_content=False, _request_timeout=self._timeout, **kwargs)
        try:
            request.status = resp.status
            raw = await resp.read()
        finally:
            resp.release()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"message": raw[:500].decode(errors="replace")}
        if not 200 <= resp.status <= 299:
            message = body.get("message", "") if isinstance(body, dict) else str(body)[:500]
            raise KubeApiError(resp.status, message, body.get("reason", "") if isinstance(body, dict) else "")
        return body if isinstance(body, dict) else {"items": body}


def _dry(dry_run: bool) -> dict[str, str]:
    return {"dry_run": "All"} if dry_run else {}
