"""RFC 5424 framing, received by real UDP and TCP (octet-counting) servers on loopback."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import pytest
from minerlens_siem.decode import Alert, decode_alert
from minerlens_siem.delivery import DeliveryReport
from minerlens_siem.outputs import CefSyslogOutput
from minerlens_siem.syslog import SyslogSender, octet_counted, rfc5424, truncate_utf8

from tests.siem.findings import finding_json, make_finding
from tests.siem.test_cef import parse_cef

RFC5424 = re.compile(
    rb"<(?P<pri>\d{1,3})>1 (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<host>[!-~]{1,255}) "
    rb"(?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) (?P<msgid>[!-~]{1,32}) - (?P<msg>.*)\Z",
    re.DOTALL,
)


class UdpCollector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.datagrams.put_nowait(data)


class TcpCollector:
    """Parses RFC 6587 octet-counted frames from every connection."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[bytes] = asyncio.Queue()
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                length = await reader.readuntil(b" ")
                assert re.fullmatch(rb"[1-9]\d* ", length), length
                self.messages.put_nowait(await reader.readexactly(int(length[:-1])))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def alert() -> Alert:
    decoded = decode_alert(finding_json(make_finding(severity_id=4)))
    assert isinstance(decoded, Alert)
    return decoded


def test_rfc5424_header_fields() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    message = rfc5424(
        "CEF:0|x", facility=4, severity=3, hostname="node a", app_name="minerlens", procid="42", moment=moment
    )
    assert message == b"<35>1 2026-01-02T03:04:05.678Z node_a minerlens 42 - - CEF:0|x"
    assert rfc5424("m", facility=23, severity=7, hostname="")[:6] == b"<191>1"
    with pytest.raises(ValueError, match="facility"):
        rfc5424("m", facility=24, severity=0, hostname="h")


def test_octet_counting_counts_bytes_not_characters() -> None:
    assert octet_counted("é\n".encode()) == b"3 \xc3\xa9\n"
    assert truncate_utf8("aé".encode(), 2) == b"a"


async def test_cef_over_udp_reaches_a_real_socket() -> None:
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(UdpCollector, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        output = CefSyslogOutput(SyslogSender("127.0.0.1", port, "udp"), facility=4, hostname="exporter-1")
        output.submit(alert(), ref="r1")
        output.submit(alert(), ref="r2")
        report = await output.flush()
        assert report.delivered == 2
        assert report.ok
        for _ in range(2):
            data = await asyncio.wait_for(server.datagrams.get(), 5)
            m = RFC5424.match(data)
            assert m, data[:120]
            assert int(m["pri"]) == 4 * 8 + 3  # facility auth, OCSF High -> err(3)
            assert m["host"] == b"exporter-1"
            assert m["app"] == b"minerlens"
            assert m["msgid"] == b"CEF"
            header, ext = parse_cef(m["msg"].decode())
            assert header[4] == "200401"
            assert ext["cs2"] == "checkout-7d9f8b6c5-x2k4q"
        await output.close(1)
    finally:
        transport.close()


async def test_cef_over_tcp_with_octet_counting_and_special_characters_in_values() -> None:
    collector = TcpCollector()
    server = await asyncio.start_server(collector.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        decoded = decode_alert(finding_json(make_finding(message="line one \\ line two = x | y")))
        assert isinstance(decoded, Alert)
        output = CefSyslogOutput(SyslogSender("127.0.0.1", port, "tcp"), hostname="exporter-1")
        for i in range(3):
            output.submit(decoded, ref=i)
        report = await output.flush()
        assert report.delivered == 3
        for _ in range(3):
            m = RFC5424.match(await asyncio.wait_for(collector.messages.get(), 5))
            assert m
            _, ext = parse_cef(m["msg"].decode())
            assert ext["msg"] == "line one \\ line two = x | y"  # no newline: the contract refuses control characters
        assert collector.connections == 1  # one persistent connection
        await output.close(1)
    finally:
        server.close()
        await server.wait_closed()


async def test_tcp_reconnects_after_the_server_drops_the_connection() -> None:
    collector = TcpCollector()
    server = await asyncio.start_server(collector.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sender = SyslogSender("127.0.0.1", port, "tcp", timeout_s=2)
    try:
        await sender.send(b"first")
        assert await asyncio.wait_for(collector.messages.get(), 5) == b"first"
        for w in collector.writers:  # the server side hangs up
            w.close()
        await asyncio.sleep(0.1)
        await sender.send(b"second")
        assert await asyncio.wait_for(collector.messages.get(), 5) == b"second"
        assert collector.connections == 2
    finally:
        await sender.close()
        server.close()
        await server.wait_closed()


async def test_unreachable_tcp_receiver_reports_the_alerts_lost() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()  # nothing listens on port any more
    output = CefSyslogOutput(SyslogSender("127.0.0.1", port, "tcp", timeout_s=1), hostname="h")
    output.submit(alert(), ref="a")
    output.submit(alert(), ref="b")
    report: DeliveryReport = await output.flush()
    assert not report.ok
    assert [ref for ref, _ in report.lost] == ["a", "b"]
    assert "ConnectionRefusedError" in report.lost[0][1]


async def test_udp_messages_over_the_limit_are_cut_on_a_character_boundary() -> None:
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(UdpCollector, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    sender = SyslogSender("127.0.0.1", port, "udp", max_udp_bytes=1000)
    try:
        await sender.send("é".encode() * 600)
        data = await asyncio.wait_for(server.datagrams.get(), 5)
        assert len(data) == 1000
        data.decode()  # still valid UTF-8
        assert sender.truncated == 1
    finally:
        await sender.close()
        transport.close()
