"""A minimal client for the Redis (RESP) and memcached text protocols: probes and counters only."""

from __future__ import annotations

import socket


def redis_command(port: int, *args: str, host: str = "127.0.0.1", timeout_s: float = 2.0) -> str:
    """Send one command, return its reply as text (simple string, integer or bulk string)."""
    req = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection((host, port), timeout=timeout_s) as s:
        s.sendall(req.encode())
        f = s.makefile("rb")
        head = f.readline().decode().rstrip("\r\n")
        if not head:
            msg = "connection closed without a reply"
            raise ConnectionError(msg)
        kind, rest = head[0], head[1:]
        if kind == "-":
            raise RuntimeError(rest)
        if kind == "$":
            n = int(rest)
            return "" if n < 0 else f.read(n + 2)[:n].decode(errors="replace")
        return rest


def redis_info(port: int, section: str = "stats") -> dict[str, str]:
    """``INFO section`` as a dict."""
    text = redis_command(port, "INFO", section)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))


def memcached_stats(port: int, host: str = "127.0.0.1", timeout_s: float = 2.0) -> dict[str, str]:
    """The ``stats`` of a memcached server."""
    with socket.create_connection((host, port), timeout=timeout_s) as s:
        s.sendall(b"stats\r\n")
        f = s.makefile("rb")
        out: dict[str, str] = {}
        for raw in f:
            line = raw.decode(errors="replace").rstrip("\r\n")
            if line == "END" or not line:
                break
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[0] == "STAT":
                out[parts[1]] = parts[2]
        return out
