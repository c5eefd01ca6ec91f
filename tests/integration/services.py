"""Where the integration tests find the real local services, and what they do when one is missing.

The services are started by ``scripts/kafka.sh start`` (Kafka 4.x, KRaft, 127.0.0.1:19092) and
``scripts/redis.sh start`` (Redis, 127.0.0.1:16379).  Point the tests elsewhere with

* ``MINERLENS_KAFKA_BOOTSTRAP`` (default ``127.0.0.1:19092``; comma-separated ``host:port`` list)
* ``MINERLENS_REDIS_URL`` (default ``redis://127.0.0.1:16379/0``)

A test that needs a service calls :func:`require_kafka` / :func:`require_redis` (or uses them in a
fixture).  When the service does not accept a TCP connection the test is *skipped* with the reason,
unless ``MINERLENS_REQUIRE_SERVICES=1`` is set (as CI does), in which case it *fails*.
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:19092"
DEFAULT_REDIS_URL = "redis://127.0.0.1:16379/0"
CONNECT_TIMEOUT_S = 2.0

_TRUE = {"1", "true", "yes", "on"}


def kafka_bootstrap() -> str:
    """The Kafka bootstrap servers the tests use (``host:port[,host:port...]``)."""
    return os.environ.get("MINERLENS_KAFKA_BOOTSTRAP", "").strip() or DEFAULT_KAFKA_BOOTSTRAP


def redis_url() -> str:
    """The Redis URL the tests use (``redis://[:password@]host:port/db``)."""
    return os.environ.get("MINERLENS_REDIS_URL", "").strip() or DEFAULT_REDIS_URL


def services_required() -> bool:
    """True when a missing service must fail the test instead of skipping it."""
    return os.environ.get("MINERLENS_REQUIRE_SERVICES", "").strip().lower() in _TRUE


def _host_port(address: str, default_port: int) -> tuple[str, int]:
    host, sep, port = address.strip().rpartition(":")
    if not sep:
        return address.strip(), default_port
    return host.strip("[]"), int(port)


def _reachable(host: str, port: int) -> str | None:
    """None when host:port accepts a TCP connection, else why not."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"


def _unavailable(what: str, detail: str, hint: str) -> NoReturn:
    message = f"{what} is not reachable ({detail}); start it with `{hint}`"
    if services_required():
        pytest.fail(f"{message} [MINERLENS_REQUIRE_SERVICES=1]", pytrace=False)
    pytest.skip(f"{message}, or set MINERLENS_REQUIRE_SERVICES=1 to make this a failure")


def require_kafka() -> str:
    """Return the bootstrap servers, or skip/fail the test when no bootstrap server answers."""
    bootstrap = kafka_bootstrap()
    errors = []
    for address in bootstrap.split(","):
        if not address.strip():
            continue
        error = _reachable(*_host_port(address, 9092))
        if error is None:
            return bootstrap
        errors.append(error)
    _unavailable("Kafka", "; ".join(errors) or f"empty bootstrap {bootstrap!r}", "scripts/kafka.sh start")


def require_redis() -> str:
    """Return the Redis URL, or skip/fail the test when Redis does not accept a connection."""
    url = redis_url()
    parts = urlsplit(url)
    error = _reachable(parts.hostname or "127.0.0.1", parts.port or 6379)
    if error is not None:
        _unavailable("Redis", error, "scripts/redis.sh start")
    return url
