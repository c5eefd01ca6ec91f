"""A loopback stratum pool for the lab's miners (XMRig's JSON-RPC dialect, one JSON object per line).

It binds loopback only and paces miners like a real Monero pool (``config.REALISTIC``): vardiff aims at
one share per 30 s per connection and stays there (``vardiff``), a fresh job every 60-120 s and on
every simulated new block (``jobs``), keepalives, idle connections closed. ``config.CHATTY`` is the
old one-share-a-second pace, kept as an explicit variant. Every share is recomputed
(``minerlens_lab.miners.pow``). ``server.PoolServer`` is the asyncio server, ``thread.PoolThread``
runs it in a thread, ``client.query_stats`` asks any running pool for a login's counters, and
``python -m minerlens_lab.pool`` runs it as a process of its own (e.g. inside a network namespace).
"""

from __future__ import annotations

from minerlens_lab.pool.client import query_stats
from minerlens_lab.pool.config import CHATTY, PROFILES, REALISTIC, PoolConfig, profile
from minerlens_lab.pool.server import HOST, LoginStats, PoolServer, start_difficulty
from minerlens_lab.pool.thread import PoolThread

__all__ = [
    "CHATTY",
    "HOST",
    "PROFILES",
    "REALISTIC",
    "LoginStats",
    "PoolConfig",
    "PoolServer",
    "PoolThread",
    "profile",
    "query_stats",
    "start_difficulty",
]
