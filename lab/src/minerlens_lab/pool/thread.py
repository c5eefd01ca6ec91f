"""A ``PoolServer`` on its own event loop in a daemon thread, for synchronous callers (the runner, tests)::

with PoolThread(cache_dir) as pool:
    ctx.pool = pool.address
    ...
    pool.stats(login)  # {"accepted": .., "rejected": .., "difficulty": .., ...}
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import Any

from minerlens_lab.pool.server import HOST, PoolServer


class PoolThread:
    def __init__(self, cache_dir: Path, *, warm_up: tuple[str, ...] = ("rx/0", "cn-like"), **kwargs: Any) -> None:
        self.server = PoolServer(cache_dir, **kwargs)
        self._warm = warm_up
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stratum-pool", daemon=True)
        self.address: tuple[str, int] = (HOST, 0)

    def start(self) -> tuple[str, int]:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self.server.start(), self._loop)
        self.address = fut.result(timeout=10)
        if self._warm:
            asyncio.run_coroutine_threadsafe(self.server.warm_up(self._warm), self._loop).result(timeout=120)
        return self.address

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def stats(self, login: str) -> dict[str, Any]:
        return self.server.stats(login)

    def new_block(self) -> None:
        """Simulate a new block: every connection gets a new job."""
        self._loop.call_soon_threadsafe(self.server.new_block)

    def __enter__(self) -> PoolThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
