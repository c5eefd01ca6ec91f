"""Pod metadata cache for this node: pod uid -> namespace/name/labels/owner, container id -> container name and
image (``container_images.ContainerImages``, kept from the same pod objects), fed by the Kubernetes API.

Lists the node's pods (field selector ``spec.nodeName=<node>``) and then watches them from the list's
resourceVersion in a background task (ecosystem notes 5.3). ``410 Gone`` triggers a re-list; other errors
back off exponentially while the last known data stays in place. Deleted pods stay visible for a grace
period because their last syscalls may still be in flight. Without kubeconfig/service account the cache
stays empty and pods are reported by uid only. Needs the optional ``k8s`` extra (kubernetes_asyncio).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from minerlens_core.retrying import Backoff, retry
from minerlens_core.schemas import ContainerImage
from minerlens_core.schemas.envelope import PodRef
from pydantic import ValidationError

from minerlens_collector.agent.container_images import STATUS_KEYS, ContainerImages, strip_runtime

log = logging.getLogger(__name__)


class Owner(NamedTuple):
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class _Entry:
    ref: PodRef
    owner: Owner | None
    container_ids: frozenset[str]


def _default_kubeconfig() -> str | None:
    paths = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    return paths if any(os.path.exists(p) for p in paths.split(os.pathsep) if p) else None


class PodMetadataCache:
    """In-memory map of this node's pods; ``lookup``/``container_name``/``owner`` are sync and O(1)."""

    def __init__(
        self,
        node_name: str,
        *,
        kubeconfig: str | None = None,
        in_cluster: bool | None = None,
        resync_s: float = 300.0,
        deleted_grace_s: float = 120.0,
        sync_timeout_s: float = 10.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.node_name = node_name
        self._kubeconfig = kubeconfig
        self._in_cluster = in_cluster
        self._resync_s = resync_s
        self._grace_s = deleted_grace_s
        self._sync_timeout_s = sync_timeout_s
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._selector = f"spec.nodeName={node_name}"
        self._pods: dict[str, _Entry] = {}
        self._containers: dict[str, tuple[str, str]] = {}  # container id -> (pod uid, container name)
        self._deleted: dict[str, float] = {}  # pod uid -> monotonic eviction time
        self.images = ContainerImages()  # container id -> image, from the same pod objects
        self._api: Any = None
        self._v1: Any = None
        self._task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()
        self._listed_at = 0.0
        self._rv: str | None = None  # where the next watch starts (None: list first)
        self.lists = 0
        self.watch_events = 0
        self.errors = 0

    @property
    def ready(self) -> bool:
        """True once a list succeeded; stays True during API outages (last known data is kept)."""
        return self._synced.is_set()

    def __len__(self) -> int:
        return len(self._pods)

    # ---- queries (sync, O(1)) ---------------------------------------------------------------------

    def lookup(self, pod_uid: str) -> PodRef | None:
        entry = None if self._expired(pod_uid) else self._pods.get(pod_uid)
        return entry.ref if entry else None

    def owner(self, pod_uid: str) -> Owner | None:
        """First ownerReference (kind, name), e.g. ``Owner("ReplicaSet", "web-5d9f")``."""
        entry = None if self._expired(pod_uid) else self._pods.get(pod_uid)
        return entry.owner if entry else None

    def container_name(self, container_id: str) -> str | None:
        """Container name for a runtime id, bare (``<id>``) or as in the API (``containerd://<id>``)."""
        hit = self._containers.get(strip_runtime(container_id))
        return None if hit is None or self._expired(hit[0]) else hit[1]

    def container_image(self, container_id: str) -> ContainerImage | None:
        """The container's image; known while ``container_name`` knows the container (its pod's deletion grace)."""
        if not container_id or self.container_name(container_id) is None:  # unknown, or its pod evicted
            return None
        return self.images.lookup(container_id)

    # ---- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, then list+watch in the background; waits up to ``sync_timeout_s`` for the first list.

        Never raises: without API access it logs one warning and the cache stays empty.
        """
        if self._task is not None:
            return
        self._v1 = await self._connect()
        if self._v1 is None:
            return
        self._task = asyncio.create_task(self._run(), name=f"pod-metadata-{self.node_name}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._synced.wait(), self._sync_timeout_s)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._api is not None:
            await self._api.close()
            self._api = self._v1 = None

    async def _connect(self) -> Any:
        try:
            from kubernetes_asyncio import client, config
        except ImportError:
            log.warning(
                "kubernetes_asyncio is not installed (extra 'k8s'): pod metadata enrichment is "
                "disabled, pods are reported by uid only"
            )
            return None
        cfg = client.Configuration()
        auto_in_cluster = self._in_cluster is None and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        try:
            if self._kubeconfig is None and (self._in_cluster or auto_in_cluster):
                load_incluster: Any = config.load_incluster_config  # untyped in kubernetes_asyncio
                load_incluster(client_configuration=cfg)
            else:
                path = self._kubeconfig or _default_kubeconfig()
                if path is None:
                    log.warning(
                        "no Kubernetes API config (no kubeconfig, not in-cluster): pod metadata "
                        "enrichment is disabled, pods are reported by uid only"
                    )
                    return None
                await config.load_kube_config(config_file=path, client_configuration=cfg, persist_config=False)
        except Exception as exc:  # noqa: BLE001 - any config problem only disables enrichment
            log.warning(
                "cannot load Kubernetes API config (%s): pod metadata enrichment is disabled, "
                "pods are reported by uid only",
                exc,
            )
            return None
        self._api = client.ApiClient(configuration=cfg)
        return client.CoreV1Api(self._api)

    # ---- background list + watch ------------------------------------------------------------------

    async def _run(self) -> None:
        """Forever: list (when due) and watch; errors back off (``minerlens_core.retrying``), data stays."""
        backoff = Backoff(initial_s=self._backoff[0], max_s=self._backoff[1])
        self._rv = None
        while True:
            await retry(
                self._sync,
                retry_on=(Exception,),  # the task must survive any API/network failure
                backoff=backoff,
                describe=lambda: f"pod metadata (keeping {len(self._pods)} known pods)",
                log=log,
                on_retry=self._count_error,
            )

    def _count_error(self, _exc: BaseException, _delay: float) -> None:
        self.errors += 1

    async def _sync(self) -> None:
        """List when there is no resourceVersion or a resync is due, then watch until the stream ends. Any
        failure forgets the resourceVersion (the next attempt lists); ``410 Gone`` re-lists at once, unless
        the watch of a fresh list expired before a single event (then it is an error, backed off)."""
        from kubernetes_asyncio.client.exceptions import ApiException

        while True:
            rv, self._rv = self._rv, None
            listed = rv is None or time.monotonic() - self._listed_at >= self._resync_s
            events_before = self.watch_events
            try:
                if rv is None or listed:
                    rv = await self._list()
                self._rv = await self._watch(rv)
                return
            except ApiException as exc:
                if exc.status == 410 and (not listed or self.watch_events > events_before):
                    log.info("pod watch expired (410 Gone), re-listing")
                    continue
                raise

    async def _list(self) -> str:
        from kubernetes_asyncio.client.exceptions import ApiException

        resp = await self._v1.list_pod_for_all_namespaces(
            field_selector=self._selector, _preload_content=False, _request_timeout=60
        )
        try:
            if resp.status != 200:
                raise ApiException(status=resp.status, reason=resp.reason)
            body = json.loads(await resp.read())
        finally:
            resp.release()
        seen = {uid for item in body.get("items") or [] if (uid := self._upsert(item))}
        for uid in self._pods.keys() - seen - self._deleted.keys():
            self._mark_deleted(uid)
        self._evict_due()
        self.lists += 1
        self._listed_at = time.monotonic()
        self._synced.set()
        return str(body["metadata"]["resourceVersion"])

    async def _watch(self, rv: str) -> str:
        from kubernetes_asyncio import watch

        timeout = max(1, int(self._resync_s - (time.monotonic() - self._listed_at)))
        async with watch.Watch(return_type="object") as stream:
            async for event in stream.stream(
                self._v1.list_pod_for_all_namespaces,
                field_selector=self._selector,
                resource_version=rv,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout,
                _request_timeout=timeout + 30,
            ):
                if not isinstance(event, dict):
                    msg = f"malformed watch line: {str(event)[:200]!r}"
                    raise ValueError(msg)  # handled by _run's backoff like any other error
                obj: dict[str, Any] = event["raw_object"]
                rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                if event["type"] == "BOOKMARK":
                    continue
                self.watch_events += 1
                uid = self._upsert(obj)
                if uid and event["type"] == "DELETED":
                    self._mark_deleted(uid)
                self._evict_due()
        return rv

    # ---- state ------------------------------------------------------------------------------------

    def _upsert(self, pod: dict[str, Any]) -> str | None:
        meta = pod.get("metadata") or {}
        try:
            ref = PodRef(
                uid=meta.get("uid", ""),
                namespace=meta.get("namespace", ""),
                name=meta.get("name", ""),
                labels=meta.get("labels") or {},
            )
        except ValidationError:
            log.debug("skipping pod with unusable metadata: %r", meta)
            return None
        owners = meta.get("ownerReferences") or []
        owner = Owner(owners[0].get("kind", ""), owners[0].get("name", "")) if owners else None
        containers: dict[str, str] = {}
        status = pod.get("status") or {}
        for key in STATUS_KEYS:
            for cs in status.get(key) or []:
                last = ((cs.get("lastState") or {}).get("terminated") or {}).get("containerID")
                for cid in (last, cs.get("containerID")):  # previous run's id too: late syscalls
                    if cid:
                        containers[strip_runtime(cid)] = cs.get("name", "")
        old = self._pods.get(ref.uid)
        for cid in old.container_ids - containers.keys() if old else ():
            self._containers.pop(cid, None)
        self._pods[ref.uid] = _Entry(ref, owner, frozenset(containers))
        self._containers.update((cid, (ref.uid, name)) for cid, name in containers.items())
        self.images.update(ref.uid, pod)
        self._deleted.pop(ref.uid, None)
        return ref.uid

    def _mark_deleted(self, uid: str) -> None:
        self._deleted.setdefault(uid, time.monotonic() + self._grace_s)

    def _expired(self, uid: str) -> bool:
        due = self._deleted.get(uid)
        if due is None or time.monotonic() < due:
            return False
        self._evict(uid)
        return True

    def _evict_due(self) -> None:
        now = time.monotonic()
        for uid in [u for u, due in self._deleted.items() if due <= now]:
            self._evict(uid)

    def _evict(self, uid: str) -> None:
        self._deleted.pop(uid, None)
        entry = self._pods.pop(uid, None)
        for cid in entry.container_ids if entry else ():
            if self._containers.get(cid, ("",))[0] == uid:
                del self._containers[cid]
        self.images.forget(uid)
