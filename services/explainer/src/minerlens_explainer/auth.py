"""Bearer tokens from a mounted file, two roles (``read``, ``admin``), compared in constant time.

File format (one token per line, ``#`` comments and blank lines ignored)::

    read:3dd0f0b6c0b04e7ba1c1c9e2a8f4e6d1
    admin:6a0c6a9c2b6f4f3c8b8f0f6a3c1d2e4f

A token is at least 24 printable ASCII characters without spaces or ``:``; placeholders
("changeme", "example", ...) and files without any token are refused, so the service never starts
with a default credential. ``admin`` implies ``read``. The file is re-read when its mtime changes
(a rotated Kubernetes secret); an invalid new file is logged and the previous tokens stay in force.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from minerlens_core.errors import ConfigurationError

log = logging.getLogger(__name__)

Role = Literal["read", "admin"]
ROLES: tuple[Role, ...] = ("read", "admin")
MIN_TOKEN_LENGTH = 24
_TOKEN = re.compile(r"^[\x21-\x7e]+$")
_PLACEHOLDERS = ("changeme", "change-me", "change_me", "example", "placeholder", "replace", "default", "your-token")
_RECHECK_S = 1.0


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def token_digest(token: str) -> bytes:
    """The sha256 of a token: what sessions keep (and, its first 12 hex digits, what audit records name)."""
    return _digest(token)


@dataclass(frozen=True)
class _Entry:
    role: Role
    digest: bytes


def parse_tokens(text: str, source: str = "tokens file") -> tuple[_Entry, ...]:
    """Parse ``role:token`` lines; raise ``ConfigurationError`` naming the line on anything unsafe."""
    entries: list[_Entry] = []
    seen: set[bytes] = set()
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        role, sep, token = line.partition(":")
        role, token = role.strip(), token.strip()
        where = f"{source} line {n}"
        if not sep or role not in ROLES:
            msg = f"{where}: expected 'read:TOKEN' or 'admin:TOKEN'"
            raise ConfigurationError(msg)
        if len(token) < MIN_TOKEN_LENGTH or not _TOKEN.match(token) or ":" in token:
            msg = f"{where}: a token needs >= {MIN_TOKEN_LENGTH} printable characters without spaces or ':'"
            raise ConfigurationError(msg)
        lowered = token.lower()
        if any(p in lowered for p in _PLACEHOLDERS) or len(set(token)) < 8:
            msg = f"{where}: the token looks like a placeholder; generate one (minerlens explainer token)"
            raise ConfigurationError(msg)
        digest = _digest(token)
        if digest in seen:
            msg = f"{where}: duplicate token"
            raise ConfigurationError(msg)
        seen.add(digest)
        entries.append(_Entry(role, digest))
    if not entries:
        msg = f"{source}: no tokens; the explainer refuses to run without authentication"
        raise ConfigurationError(msg)
    return tuple(entries)


class TokenFile:
    """The tokens of one file; ``role_of`` checks a presented token against every entry in constant time."""

    def __init__(self, path: Path | None) -> None:
        if path is None:
            msg = "MINERLENS_EXPLAINER_TOKENS_FILE is not set: the explainer refuses to run without bearer tokens"
            raise ConfigurationError(msg)
        self.path = Path(path)
        self._lock = threading.Lock()
        self._mtime, self._entries = self._read()
        self._checked = time.monotonic()

    def _read(self) -> tuple[int, tuple[_Entry, ...]]:
        try:
            mtime = self.path.stat().st_mtime_ns
            text = self.path.read_text()
        except OSError as exc:
            msg = f"{self.path}: cannot read the tokens file: {exc.strerror or exc}"
            raise ConfigurationError(msg) from None
        return mtime, parse_tokens(text, str(self.path))

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < _RECHECK_S:
            return
        with self._lock:
            self._checked = now
            try:
                mtime = self.path.stat().st_mtime_ns
            except OSError:
                return
            if mtime == self._mtime:
                return
            try:
                self._mtime, self._entries = self._read()
                log.info("reloaded %d tokens from %s", len(self._entries), self.path)
            except ConfigurationError as exc:
                self._mtime = mtime
                log.error("keeping the previous tokens: %s", exc)

    @property
    def count(self) -> int:
        return len(self._entries)

    def role_of(self, token: str) -> Role | None:
        """The role of ``token`` (``admin`` wins), or None. Every entry is compared; no early exit."""
        return self.role_of_digest(_digest(token))

    def role_of_digest(self, presented: bytes) -> Role | None:
        """``role_of`` for a token known by its sha256 (a console session keeps that, never the token)."""
        self._maybe_reload()
        found: Role | None = None
        for entry in self._entries:
            if hmac.compare_digest(presented, entry.digest) and found != "admin":
                found = entry.role
        return found


def allows(role: Role | None, needed: Role) -> bool:
    return role == "admin" or (role == "read" and needed == "read")
