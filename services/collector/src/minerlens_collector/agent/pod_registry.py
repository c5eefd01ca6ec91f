"""Pod names for emulated pods: ``LocalPod`` writes ``<uid>.json`` into a registry directory, the
collector reads it when no Kubernetes API is configured (the role the API server plays on a node)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from minerlens_core.schemas import PodRef
from pydantic import ValidationError


class LocalPodRegistry:
    def __init__(self, directory: Path, refresh_s: float = 1.0) -> None:
        self._dir = directory
        self._refresh_s = refresh_s
        self._cache: dict[str, tuple[float, PodRef | None]] = {}

    def lookup(self, uid: str) -> PodRef | None:
        now = time.monotonic()
        hit = self._cache.get(uid)
        if hit is not None and now - hit[0] < self._refresh_s:
            return hit[1]
        try:
            ref: PodRef | None = PodRef.model_validate(json.loads((self._dir / f"{uid}.json").read_text()))
        except (OSError, ValueError, ValidationError):
            ref = None
        if ref is not None and ref.uid != uid:
            ref = None
        self._cache[uid] = (now, ref)
        return ref
