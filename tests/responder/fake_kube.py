"""A fake Kubernetes API server (aiohttp.web on 127.0.0.1) for the responder's requests.

It serves the handful of endpoints the responder uses with Kubernetes' semantics that matter here
(404 for missing objects, 409 for an existing NetworkPolicy, 429 when a PodDisruptionBudget blocks an
eviction, ``dryRun=All`` persisting nothing, merge-patch applied to the stored object) and records
every request exactly: method, path, query, content type, JSON body, Authorization header.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

TOKEN = "fake-token-7f3a"


@dataclass
class Req:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any
    auth: str

    @property
    def line(self) -> tuple[str, str]:
        return self.method, self.path


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message}
    return web.json_response({**body, "code": code}, status=code)


def make_pod(
    name: str,
    uid: str,
    namespace: str = "shop",
    *,
    owner: tuple[str, str] | None = ("ReplicaSet", "web-5d9f"),
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid, "labels": dict(labels or {"app": "web"})}
    if owner:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "uid": f"{owner[1]}-uid", "controller": True}
        ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": [{"name": "app"}]}}


class FakeKube:
    def __init__(self) -> None:
        self.requests: list[Req] = []
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.replicasets: dict[tuple[str, str], dict[str, Any]] = {}
        self.scales: dict[tuple[str, str, str], int] = {}  # (kind, ns, name) -> replicas
        self.network_policies: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.pdb_blocks: set[tuple[str, str]] = set()
        self.fail_all_writes = 0  # answer this many writes with 500
        app = web.Application(middlewares=[self._record])
        r = app.router
        r.add_get("/api/v1/namespaces/{ns}/pods/{name}", self.get_pod)
        r.add_patch("/api/v1/namespaces/{ns}/pods/{name}", self.patch_pod)
        r.add_post("/api/v1/namespaces/{ns}/pods/{name}/eviction", self.evict)
        r.add_post("/apis/events.k8s.io/v1/namespaces/{ns}/events", self.create_event)
        r.add_get("/apis/apps/v1/namespaces/{ns}/replicasets/{name}", self.get_rs)
        r.add_get("/apis/apps/v1/namespaces/{ns}/{kind}/{name}/scale", self.get_scale)
        r.add_patch("/apis/apps/v1/namespaces/{ns}/{kind}/{name}/scale", self.patch_scale)
        r.add_post("/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies", self.create_np)
        self.runner = web.AppRunner(app)
        self.port = 0

    async def start(self) -> None:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]

    async def close(self) -> None:
        await self.runner.cleanup()

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "fake",
                    "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
                    "users": [{"name": "responder", "user": {"token": TOKEN}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "responder"}}],
                }
            )
        )
        return path

    # ---- helpers ----------------------------------------------------------------------------------

    def add_pod(self, pod: dict[str, Any]) -> None:
        m = pod["metadata"]
        self.pods[(m["namespace"], m["name"])] = pod

    def add_deployment(self, namespace: str, deployment: str, rs: str, replicas: int) -> None:
        self.replicasets[(namespace, rs)] = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs,
                "namespace": namespace,
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment, "controller": True}
                ],
            },
        }
        self.scales[("deployments", namespace, deployment)] = replicas

    @property
    def lines(self) -> list[tuple[str, str]]:
        return [r.line for r in self.requests]

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        self.requests.append(
            Req(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                content_type=request.headers.get("Content-Type", "").split(";")[0],
                body=json.loads(raw) if raw else None,
                auth=request.headers.get("Authorization", ""),
            )
        )
        if request.method != "GET" and self.fail_all_writes > 0:
            self.fail_all_writes -= 1
            return _status(500, "InternalError", "etcd is having a bad day")
        return await handler(request)

    @staticmethod
    def _dry(request: web.Request) -> bool:
        return request.query.get("dryRun") == "All"

    # ---- handlers ---------------------------------------------------------------------------------

    async def get_pod(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        if key not in self.pods:
            return _status(404, "NotFound", f'pods "{key[1]}" not found')
        return web.json_response(self.pods[key])

    async def patch_pod(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        if key not in self.pods:
            return _status(404, "NotFound", f'pods "{key[1]}" not found')
        if request.headers.get("Content-Type", "").split(";")[0] != "application/merge-patch+json":
            return _status(415, "UnsupportedMediaType", "this fake only takes merge patches")
        patched = _merge(self.pods[key], await request.json())
        if not self._dry(request):
            self.pods[key] = patched
        return web.json_response(patched)

    async def evict(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        if key not in self.pods:
            return _status(404, "NotFound", f'pods "{key[1]}" not found')
        body = await request.json()
        want = ((body.get("deleteOptions") or {}).get("preconditions") or {}).get("uid")
        if want and want != self.pods[key]["metadata"]["uid"]:
            return _status(409, "Conflict", "Precondition failed: UID in precondition")
        if key in self.pdb_blocks:
            return _status(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.")
        if not self._dry(request):
            del self.pods[key]
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}, status=201)

    async def create_event(self, request: web.Request) -> web.Response:
        body = await request.json()
        created = _merge(body, {"metadata": {"name": body["metadata"]["generateName"] + "x7k2q"}})
        if not self._dry(request):
            self.events.append(created)
        return web.json_response(created, status=201)

    async def get_rs(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        if key not in self.replicasets:
            return _status(404, "NotFound", f'replicasets.apps "{key[1]}" not found')
        return web.json_response(self.replicasets[key])

    def _scale_body(self, kind: str, ns: str, name: str, replicas: int) -> dict[str, Any]:
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas},
        }

    async def get_scale(self, request: web.Request) -> web.Response:
        kind, ns, name = request.match_info["kind"], request.match_info["ns"], request.match_info["name"]
        if (kind, ns, name) not in self.scales:
            return _status(404, "NotFound", f'{kind}.apps "{name}" not found')
        return web.json_response(self._scale_body(kind, ns, name, self.scales[(kind, ns, name)]))

    async def patch_scale(self, request: web.Request) -> web.Response:
        kind, ns, name = request.match_info["kind"], request.match_info["ns"], request.match_info["name"]
        if (kind, ns, name) not in self.scales:
            return _status(404, "NotFound", f'{kind}.apps "{name}" not found')
        body = _merge(self._scale_body(kind, ns, name, self.scales[(kind, ns, name)]), await request.json())
        if not self._dry(request):
            self.scales[(kind, ns, name)] = body["spec"]["replicas"]
        return web.json_response(body)

    async def create_np(self, request: web.Request) -> web.Response:
        body = await request.json()
        key = (request.match_info["ns"], body["metadata"]["name"])
        if key in self.network_policies:
            return _status(409, "AlreadyExists", f'networkpolicies.networking.k8s.io "{key[1]}" already exists')
        if not self._dry(request):
            self.network_policies[key] = body
        return web.json_response(body, status=201)
