"""Console logins: the operator pastes a token once; the browser then holds only a random session id.

``P console:s:<sha256(session id)>`` (string, TTL ``console_session_ttl_s``) keeps the role, the name given
at login, the token's sha256 (every request checks that the token is still in the tokens file: a rotated
or removed token ends its sessions) and the session's CSRF token, which every state-changing form must echo.
The cookie is ``HttpOnly``, ``SameSite=Strict``, ``Path=/console`` (and ``Secure`` over https).
"""

from __future__ import annotations

import hashlib
import secrets

from pydantic import BaseModel

from minerlens_explainer.redis_link import RedisLink
from minerlens_explainer.store import parse_stored

COOKIE = "minerlens_console"


class Session(BaseModel):
    role: str
    name: str
    token_sha256: str
    csrf: str

    @property
    def token_id(self) -> str:
        return self.token_sha256[:12]


class SessionStore:
    def __init__(self, link: RedisLink, prefix: str, ttl_s: int) -> None:
        self.link = link
        self.prefix = prefix
        self.ttl_s = ttl_s

    def _key(self, sid: str) -> str:
        return f"{self.prefix}console:s:{hashlib.sha256(sid.encode()).hexdigest()}"

    async def create(self, role: str, name: str, digest: bytes) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        session = Session(role=role, name=name, token_sha256=digest.hex(), csrf=secrets.token_urlsafe(32))
        await self.link.call(lambda r: r.set(self._key(sid), session.model_dump_json(), ex=self.ttl_s))
        return sid, session

    async def get(self, sid: str) -> Session | None:
        if not sid or len(sid) > 128:
            return None
        return parse_stored(Session, await self.link.call(lambda r: r.get(self._key(sid))))

    async def drop(self, sid: str) -> None:
        await self.link.call(lambda r: r.delete(self._key(sid)))
