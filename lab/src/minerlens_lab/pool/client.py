"""Asking a running pool (any process) for a login's counters."""

from __future__ import annotations

import json
import socket
from typing import Any

_REPLY_LIMIT = 1 << 20


def query_stats(address: tuple[str, int], login: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """A login's counters, from the pool's ``stats`` method."""
    with socket.create_connection(address, timeout=timeout_s) as sock:
        req = {"id": 1, "jsonrpc": "2.0", "method": "stats", "params": {"login": login}}
        sock.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n") and len(buf) < _REPLY_LIMIT:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    try:
        reply = json.loads(buf)
    except ValueError as exc:
        msg = f"pool stats for {login!r}: unreadable reply ({len(buf)} bytes)"
        raise RuntimeError(msg) from exc
    if not isinstance(reply, dict) or reply.get("error") or not isinstance(reply.get("result"), dict):
        msg = f"pool stats for {login!r}: {reply.get('error') if isinstance(reply, dict) else reply!r}"
        raise RuntimeError(msg)
    result: dict[str, Any] = reply["result"]
    return result
