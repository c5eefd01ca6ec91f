"""RFC 5424 syslog messages and their transports: UDP (RFC 5426) and TCP with octet counting (RFC 6587).

``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`` with no structured data and no BOM before MSG
(CEF receivers expect the message to start with ``CEF:``). Over UDP one datagram is one message; over
TCP each message is framed as ``<byte length> <message>``, so messages may contain newlines.

Delivery: UDP has no acknowledgement; TCP only tells that the kernel accepted the bytes. A closed or
reset connection is detected on the next send, reopened, and the failed send reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from datetime import UTC, datetime
from typing import Literal

log = logging.getLogger(__name__)

Transport = Literal["udp", "tcp"]

OCSF_TO_SYSLOG_SEVERITY = {6: 1, 5: 2, 4: 3, 3: 4, 2: 5, 1: 6, 0: 6}
"""OCSF severity_id -> syslog severity (Fatal alert(1), Critical crit(2), High err(3), Medium
warning(4), Low notice(5), Informational and Unknown info(6))."""

_NILVALUE = "-"


def header_field(value: str, max_len: int) -> str:
    """A syslog header field: printable US-ASCII without spaces, at most ``max_len`` characters."""
    cleaned = "".join(c if 33 <= ord(c) <= 126 else "_" for c in value)[:max_len]
    return cleaned or _NILVALUE


def timestamp(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rfc5424(
    msg: str,
    *,
    facility: int,
    severity: int,
    hostname: str,
    app_name: str = "minerlens",
    procid: str = _NILVALUE,
    msgid: str = _NILVALUE,
    moment: datetime | None = None,
) -> bytes:
    if not 0 <= facility <= 23 or not 0 <= severity <= 7:
        msg_ = f"syslog facility must be 0-23 and severity 0-7, got {facility}/{severity}"
        raise ValueError(msg_)
    head = " ".join(
        [
            f"<{facility * 8 + severity}>1",
            timestamp(moment),
            header_field(hostname, 255),
            header_field(app_name, 48),
            header_field(procid, 128),
            header_field(msgid, 32),
            _NILVALUE,
        ]
    )
    return f"{head} {msg}".encode()


def octet_counted(message: bytes) -> bytes:
    """RFC 6587 octet-counting frame: ``MSG-LEN SP SYSLOG-MSG``."""
    return str(len(message)).encode("ascii") + b" " + message


def truncate_utf8(data: bytes, limit: int) -> bytes:
    """At most ``limit`` bytes of ``data``, cut on a UTF-8 character boundary."""
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", errors="ignore").encode()


class SyslogSender:
    """Sends syslog messages to ``host:port`` over UDP or TCP; one connection, reopened on failure."""

    def __init__(
        self,
        host: str,
        port: int,
        transport: Transport = "udp",
        *,
        timeout_s: float = 5.0,
        max_udp_bytes: int = 8192,
    ) -> None:
        self.host, self.port, self.transport = host, port, transport
        self._timeout = timeout_s
        self._max_udp = max_udp_bytes
        self._udp: socket.socket | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.sent = 0
        self.truncated = 0

    async def send(self, message: bytes) -> None:
        """Send one message; raises ``OSError``/``TimeoutError`` when it could not be handed over."""
        try:
            if self.transport == "udp":
                await self._send_udp(message)
            else:
                await self._send_tcp(message)
        except (OSError, TimeoutError):
            await self.close()
            raise
        self.sent += 1

    async def _send_udp(self, message: bytes) -> None:
        if len(message) > self._max_udp:
            self.truncated += 1
            log.warning("syslog message of %d bytes cut to %d for UDP", len(message), self._max_udp)
            message = truncate_utf8(message, self._max_udp)
        loop = asyncio.get_running_loop()
        if self._udp is None:
            infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                sock.connect(address)  # connected: ICMP port-unreachable surfaces as ConnectionRefusedError
            except OSError:
                sock.close()
                raise
            self._udp = sock
        await asyncio.wait_for(loop.sock_sendall(self._udp, message), self._timeout)

    async def _send_tcp(self, message: bytes) -> None:
        if self._writer is not None and (
            self._writer.is_closing() or (self._reader is not None and self._reader.at_eof())
        ):
            log.info("syslog TCP connection to %s:%d closed by the peer; reconnecting", self.host, self.port)
            await self.close()
        writer = self._writer
        if writer is None:
            opened = asyncio.open_connection(self.host, self.port)
            reader, new_writer = await asyncio.wait_for(opened, self._timeout)
            self._reader, self._writer = reader, new_writer
            writer = new_writer
        writer.write(octet_counted(message))
        await asyncio.wait_for(writer.drain(), self._timeout)

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._writer is not None:
            writer, self._writer, self._reader = self._writer, None, None
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), self._timeout)
