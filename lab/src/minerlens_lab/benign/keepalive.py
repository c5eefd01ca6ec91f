"""Quiet pods holding one long-lived TCP connection: the look-alikes of a miner's stratum connection,
which between jobs carries a keepalive or a share now and then and nothing else.

The pod's client is real client code (a TCP ping loop, an aiohttp WebSocket client, an HTTP long-poll
loop, an aiokafka consumer, a Redis replica); the far end runs outside the pod for the whole capture
(another pod or node, here on 127.0.0.1) - except Kafka, which is the project's own broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import uuid

from minerlens_lab.benign.common import LOOKALIKE_REPEATS, port, progress_lines, read_log, setting
from minerlens_lab.benign.outside import start_outside, still_running, stop_outside
from minerlens_lab.benign.redis_server import NO_PERSISTENCE, redis_server
from minerlens_lab.benign.resp import redis_command, redis_info
from minerlens_lab.drive import Clock, ticks
from minerlens_lab.workload import CI_SUBSET, RunContext, Workload

KAFKA_BOOTSTRAP = "127.0.0.1:19092"
"""the project's Kafka (scripts/kafka.sh start)"""


class _Keepalive(Workload):
    family = "keepalive-clients"
    label = "benign"
    repeats = LOOKALIKE_REPEATS
    seconds = 30.0
    imitates = "a miner's idle stratum connection: one long-lived TCP connection with a message every few seconds"
    periods: tuple[float, ...] = (2.0, 5.0, 10.0)
    """seconds between messages, by repeat"""

    def period(self, ctx: RunContext) -> float:
        p = setting(ctx, "period_s", self.periods)
        return p

    def log(self, ctx: RunContext) -> str:
        return str(ctx.workdir / "client.log")

    def answers(self, ctx: RunContext, what: str) -> None:
        lines = [line for line in progress_lines(ctx.workdir / "client.log") if len(line) >= 2]
        last = lines[-1] if lines else [0.0, 0.0]
        ctx.facts[what] = int(last[1])
        if len(last) >= 3:
            ctx.facts["reconnects"] = int(last[2])
        if not ctx.facts[what]:
            msg = f"the client got no answer (server said: {read_log(ctx.workdir / 'server.out')[-300:]!r})"
            raise RuntimeError(msg)

    def cleanup(self, ctx: RunContext) -> None:
        stop_outside(ctx)


class _ServerKeepalive(_Keepalive):
    kind: str = ""

    def prepare(self, ctx: RunContext) -> None:
        server = [
            sys.executable,
            "-m",
            "minerlens_lab.benign.keepalive_server",
            self.kind,
            f"--port={port(ctx)}",
            f"--period={self.period(ctx)}",
        ]
        start_outside(ctx, "server", server, port=port(ctx))

    def command(self, ctx: RunContext) -> list[str]:
        return [
            sys.executable,
            "-m",
            "minerlens_lab.benign.keepalive_client",
            self.kind,
            f"--port={port(ctx)}",
            f"--period={self.period(ctx)}",
            f"--log={self.log(ctx)}",
        ]

    def check(self, ctx: RunContext) -> None:
        if not still_running(ctx):
            msg = f"the {self.kind} server died: {read_log(ctx.workdir / 'server.out')[-300:]!r}"
            raise RuntimeError(msg)
        self.answers(ctx, "answers")


class TcpKeepaliveClient(_ServerKeepalive):
    name = "tcp-keepalive-client"
    variant = "ping-pong-lines"
    subsets = (CI_SUBSET,)
    description = "a Python client on one TCP connection (SO_KEEPALIVE): PING every 2/5/10 s, server answers PONG"
    requires = ()
    kind = "tcp"


class WebsocketClient(_ServerKeepalive):
    name = "websocket-client"
    variant = "aiohttp-heartbeat"
    description = (
        "an aiohttp WebSocket client (protocol heartbeat every 2/5/10 s) receiving and acking the server's"
        " notifications on one connection"
    )
    requires = ("python:aiohttp",)
    kind = "ws"


class HttpLongPollClient(_ServerKeepalive):
    name = "http-long-poll-client"
    variant = "keepalive-get-poll"
    description = (
        "an HTTP/1.1 keep-alive client long-polling /poll (held by an aiohttp server until an event every"
        " 2/5/10 s), like watch APIs and blocking queries"
    )
    requires = ("python:aiohttp",)
    kind = "longpoll"


class KafkaConsumerIdle(_Keepalive):
    name = "kafka-consumer-idle"
    variant = "aiokafka-group-consumer"
    description = (
        "an aiokafka consumer in a group on the project's Kafka, waiting on a topic that gets one record"
        " every 2/5/10 s (fetch long-polls, group heartbeats)"
    )
    requires = ("python:aiokafka", f"tcp:{KAFKA_BOOTSTRAP}")

    def topic(self, ctx: RunContext) -> str:
        if "topic" not in ctx.facts:
            ctx.facts["topic"] = f"minerlens-lab-{uuid.uuid4().hex[:12]}"
        return str(ctx.facts["topic"])

    def prepare(self, ctx: RunContext) -> None:
        asyncio.run(self._admin(ctx, create=True))

    def command(self, ctx: RunContext) -> list[str]:
        self.period(ctx)
        return [
            sys.executable,
            "-m",
            "minerlens_lab.benign.kafka_consumer",
            f"--bootstrap={KAFKA_BOOTSTRAP}",
            f"--topic={self.topic(ctx)}",
            f"--group={self.topic(ctx)}-group",
            f"--log={self.log(ctx)}",
        ]

    def drive(self, ctx: RunContext, stop: threading.Event) -> None:
        asyncio.run(self._produce(ctx, stop))

    async def _produce(self, ctx: RunContext, stop: threading.Event) -> None:
        from aiokafka import AIOKafkaProducer

        clock = Clock(ctx.seconds)
        producer = AIOKafkaProducer(bootstrap_servers=KAFKA_BOOTSTRAP, acks=1)
        await producer.start()
        sent = 0
        try:
            for tick in ticks(stop, clock, self.period(ctx)):
                await producer.send_and_wait(self.topic(ctx), f'{{"tick": {tick}}}'.encode())
                sent += 1
        finally:
            await producer.stop()
            ctx.facts["records_produced"] = sent

    async def _admin(self, ctx: RunContext, *, create: bool) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP)
        await admin.start()
        try:
            if create:
                await admin.create_topics([NewTopic(self.topic(ctx), num_partitions=1, replication_factor=1)])
            else:
                await admin.delete_topics([self.topic(ctx)])
        finally:
            await admin.close()

    def check(self, ctx: RunContext) -> None:
        self.answers(ctx, "records_consumed")

    def cleanup(self, ctx: RunContext) -> None:
        if "topic" in ctx.facts:
            with contextlib.suppress(Exception):  # the topic is the run's own; a failed delete only leaves it
                asyncio.run(self._admin(ctx, create=False))


class RedisReplica(_Keepalive):
    name = "redis-replica"
    variant = "replicaof-loopback-master"
    description = (
        "redis-server --replicaof a master outside the pod that gets a few writes every 0.5/2/5 s"
        " (replication stream, REPLCONF ACK each second, master pings)"
    )
    requires = ("redis-server",)
    periods = (0.5, 2.0, 5.0)

    def master_port(self, ctx: RunContext) -> int:
        if "master_port" not in ctx.facts:
            ctx.facts["master_port"] = RunContext.free_port()
        return int(ctx.facts["master_port"])

    def prepare(self, ctx: RunContext) -> None:
        master = ctx.workdir / "master"
        master.mkdir()
        start_outside(
            ctx, "server", redis_server(self.master_port(ctx), master, *NO_PERSISTENCE), port=self.master_port(ctx)
        )
        # a data set for the initial full sync: 20k keys of 200 bytes, 1000 per MSET
        for batch in range(20):
            pairs = [x for i in range(1000) for x in (f"seed:{batch}:{i}", f"{batch}-{i}-".ljust(200, "v"))]
            redis_command(self.master_port(ctx), "MSET", *pairs)

    def command(self, ctx: RunContext) -> list[str]:
        self.period(ctx)
        replica_of = ("--replicaof", "127.0.0.1", str(self.master_port(ctx)))
        return redis_server(port(ctx), ctx.workdir, *replica_of, *NO_PERSISTENCE, logfile=ctx.workdir / "replica.log")

    def drive(self, ctx: RunContext, stop: threading.Event) -> None:
        clock = Clock(ctx.seconds)
        m = self.master_port(ctx)
        writes = 0
        for tick in ticks(stop, clock, self.period(ctx)):
            with contextlib.suppress(OSError, RuntimeError):
                redis_command(m, "SET", f"session:{tick % 50}", f"user-{tick}")
                redis_command(m, "INCR", "counter")
                writes += 2
        ctx.facts["master_writes"] = writes
        with contextlib.suppress(OSError, RuntimeError, KeyError):
            info = redis_info(port(ctx), "replication")
            ctx.facts["master_link_status"] = info["master_link_status"]
            ctx.facts["replica_offset"] = int(info["slave_repl_offset"])
            ctx.facts["replica_counter"] = int(redis_command(port(ctx), "GET", "counter") or 0)
            ctx.facts["replica_keys"] = int(redis_command(port(ctx), "DBSIZE"))

    def check(self, ctx: RunContext) -> None:
        if ctx.facts.get("master_link_status") != "up" or not ctx.facts.get("replica_counter"):
            msg = f"the replica did not replicate: {ctx.facts} {read_log(ctx.workdir / 'replica.log')[-300:]!r}"
            raise RuntimeError(msg)
