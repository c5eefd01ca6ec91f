"""Throughput of one featurizer worker: syscalls/s and windows/s.

    .venv/bin/python bench/featurizer_throughput.py [--events 3000000] [--pods 32] [--policy time|count]
                                                    [--modes engine,agent,kafka] [--repeat 2]

Workload: the committed sample traces of busy workloads (nginx, memcached, make, ffmpeg, miners with
yield loops, ...), each replayed as ``--pods`` pods (tiled in time until the pod has its share of
``--events``) and batched exactly as the collector batches (16384 events or 1 s per batch), merged by
time, JSON-encoded beforehand (encoding is the collector's cost, not the featurizer's).

Modes (best of ``--repeat`` after a warm-up, except kafka which runs once):
  * engine: ``Featurizer`` + ``WindowEncoder`` without Faust: decode, checks, windowing, state
    segments, one ``vectorize_many`` per micro-batch of 64 messages, FeatureWindow JSON;
  * agent:  the same messages through the real Faust agent in-process (``test_context``, memory store):
    adds Faust's stream machinery, manual acks, micro-batch flushes and table writes;
  * kafka:  end to end: the batches are produced to a fresh topic (4 partitions), then one worker
    (``minerlens featurizer run``, its own process) consumes them from Kafka, writes windows and its
    changelog; rate = syscalls counted by its /metrics between the first and the last one.
Prints syscalls/s and windows/s; nothing is asserted. The machine's cores are shared with the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import zlib
from pathlib import Path

import pyarrow as pa
from minerlens_collector.tools.replay import ReplayPod, batches_from_trace, interleave
from minerlens_core.features import FeatureSpec, WindowPolicy
from minerlens_core.kafka import make_producer, message_headers
from minerlens_core.models import VerifiedManifest
from minerlens_core.schemas import SyscallBatch
from minerlens_core.settings import KafkaSettings
from minerlens_core.traces import Trace, read_trace
from minerlens_featurizer.app import FeaturizerApp
from minerlens_featurizer.control import Tick, encode_control
from minerlens_featurizer.encode import WindowEncoder
from minerlens_featurizer.engine import Featurizer
from minerlens_featurizer.settings import FeaturizerSettings
from minerlens_featurizer.spec import ServedSpec, policy_tag

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "traces"
MODEL = ROOT / "models" / "xgboost-time1s"
BUSY = [
    "nginx-wrk-r1",
    "memcached-memaslap-r1",
    "make-luajit-r1",
    "ffmpeg-x264-hls-r1",
    "miner-cryptonight-2t-r1",
    "miner-cryptonight-noise-70-r1",
    "miner-randomx-hidden-web-r1",
    "gzip-compress-r1",
]


def tiled(trace: Trace, events: int) -> Trace:
    """The trace repeated back to back (timestamps shifted) until it holds at least ``events`` rows."""
    t = trace.table
    ts = t.column("ts_ns").to_numpy()
    span = int(ts.max() - ts.min()) + 1_000_000
    reps = max(1, -(-events // t.num_rows))
    parts = []
    for k in range(reps):
        parts.append(t.set_column(0, "ts_ns", pa.array(ts + k * span, pa.int64())))
    return Trace(pa.concat_tables(parts), trace.meta)


def workload(events: int, pods: int) -> tuple[list[SyscallBatch], int]:
    start = (time.time_ns() // 10**9 - 600) * 10**9
    streams = []
    for i in range(pods):
        trace = tiled(read_trace(SAMPLE / f"{BUSY[i % len(BUSY)]}.parquet"), events // pods)
        pod = ReplayPod(f"bench-{i}", "bench", f"pod-{i}")
        streams.append(batches_from_trace(trace, node=f"node-{i % 4}", pod=pod, start_ns=start))
    batches = interleave(streams)
    return batches, sum(len(b) for b in batches)


def spec_for(policy: str) -> FeatureSpec:
    if policy == "count":
        return FeatureSpec.default()
    if (MODEL / "manifest.json").is_file():
        return VerifiedManifest(MODEL).spec
    return FeatureSpec.build(window=WindowPolicy.time(1.0))


def settings(tmp: str) -> FeaturizerSettings:
    return FeaturizerSettings(app_id=f"bench-{uuid.uuid4().hex[:8]}", web_enabled=False, data_dir=Path(tmp))


def run_engine(served: ServedSpec, values: list[tuple[bytes, bytes]], tmp: str) -> tuple[float, float, int]:
    store: dict[bytes, bytes] = {}
    engine = Featurizer(served, settings(tmp), store)
    encoder = WindowEncoder(served)
    windows = 0

    def flush() -> None:
        nonlocal windows
        box = engine.take()
        windows += len(encoder.encode(box.windows))
        for w in box.writes.values():
            store.update(w.sets)
            for k in w.deletes:
                store.pop(k, None)

    t0, c0 = time.perf_counter(), time.process_time()
    for i, (key, value) in enumerate(values):
        engine.on_input(value, key, 0, i, "bench")
        if i % 64 == 63:
            flush()
    engine.on_control(encode_control(Tick(wall=4e9)), 0)
    flush()
    return time.perf_counter() - t0, time.process_time() - c0, windows


async def _run_agent(served: ServedSpec, values: list[tuple[bytes, bytes]], tmp: str) -> tuple[float, float, int]:
    fa = FeaturizerApp(settings(tmp), partitions=4, served=served, in_memory_outputs=True)
    out = fa.outputs.windows.__aiter__()
    windows = 0
    t0, c0 = time.perf_counter(), time.process_time()
    async with fa.featurize_agent.test_context() as agent, fa.control_agent.test_context() as control:
        for i, (key, value) in enumerate(values):
            await agent.put(value=value, key=key, partition=zlib.crc32(key) % 4, wait=False)
            if i % 256 == 0:
                while not out.queue.empty():
                    out.queue.get_nowait()
                    windows += 1
        while fa.events_seen < len(values) or fa.held():  # noqa: ASYNC110  (polls the worker's counters)
            await asyncio.sleep(0.001)
        for p in range(4):
            await control.put(value=encode_control(Tick(wall=4e9)), partition=p, wait=False)
        while fa.events_seen < len(values) + 4 or fa.held():  # noqa: ASYNC110
            await asyncio.sleep(0.001)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    while not out.queue.empty():
        out.queue.get_nowait()
        windows += 1
    return elapsed, cpu, windows


def run_agent(served: ServedSpec, values: list[tuple[bytes, bytes]], tmp: str) -> tuple[float, float, int]:
    return asyncio.run(_run_agent(served, values, tmp))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        body = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(name))


async def _produce(kafka: KafkaSettings, topic: str, batches: list[SyscallBatch], values: list[tuple[bytes, bytes]]):
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 4, 1)])
    finally:
        await admin.close()
    producer = make_producer(kafka, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, value, key=key, headers=message_headers(b))
            for b, (key, value) in zip(batches, values, strict=True)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def run_kafka(policy: str, batches: list[SyscallBatch], values: list[tuple[bytes, bytes]], total: int) -> None:
    kafka = KafkaSettings()
    u = uuid.uuid4().hex[:8]
    topic, port = f"bench.syscalls.{u}", _free_port()
    t0 = time.perf_counter()
    asyncio.run(_produce(kafka, topic, batches, values))
    print(f"  (produced {len(values)} batches in {time.perf_counter() - t0:.1f} s)")
    env = {
        **os.environ,
        "MINERLENS_FEATURIZER_APP_ID": f"bench-featurizer-{u}",
        "MINERLENS_FEATURIZER_INPUT_TOPIC": topic,
        "MINERLENS_FEATURIZER_OUTPUT_TOPIC": f"bench.windows.{u}",
        "MINERLENS_FEATURIZER_WEB_PORT": str(port),
        "MINERLENS_FEATURIZER_STANDBY_REPLICAS": "0",
        "MINERLENS_FEATURIZER_DATA_DIR": tempfile.mkdtemp(prefix="bench-featurizer-"),
    }
    if policy == "count":
        env["MINERLENS_FEATURIZER_MODEL_DIR"] = ""
    elif (MODEL / "manifest.json").is_file():
        env["MINERLENS_FEATURIZER_MODEL_DIR"] = str(MODEL)
    if policy == "count":
        print("  (kafka mode serves a model's spec or time windows; count windows are measured in-process only)")
        return
    cli = Path(sys.executable).with_name("minerlens")
    log = Path(env["MINERLENS_FEATURIZER_DATA_DIR"]) / "worker.log"
    with log.open("wb") as f:
        proc = subprocess.Popen([str(cli), "featurizer", "run"], env=env, stdout=f, stderr=subprocess.STDOUT)
    samples: list[tuple[float, float, float, float]] = []  # wall, syscalls, windows, worker CPU seconds
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                n = _metric(port, "minerlens_featurizer_syscalls_total")
                w = _metric(port, "minerlens_featurizer_windows_total")
            except OSError:
                n = w = 0.0
            samples.append((time.perf_counter(), n, w, _cpu_seconds(proc.pid)))
            if n >= total:
                break
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    moving = [s for s in samples if s[1] > 0]
    if len(moving) < 2 or moving[-1][1] < total:
        print(f"  kafka: worker did not finish ({moving[-1][1] if moving else 0:.0f}/{total}); log: {log}")
        return
    (t_a, n_a, w_a, c_a), (t_b, n_b, w_b, c_b) = moving[0], moving[-1]
    report("kafka (end to end, 1 worker)", n_b - n_a, w_b - w_a, t_b - t_a, c_b - c_a)
    print("    (from the first /metrics sample with syscalls counted to the last; the worker's own CPU time)")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(what: str, syscalls: float, windows: float, wall: float, cpu: float) -> None:
    """Wall-clock rates, and rates per CPU-second of the worker (the cores are shared with other jobs)."""
    print(
        f"  {what:28s}: {syscalls / wall / 1e6:5.2f} M syscalls/s, {windows / wall:7.0f} windows/s (wall);"
        f" {syscalls / cpu / 1e6:5.2f} M syscalls/s, {windows / cpu:7.0f} windows/s per CPU-second"
        f"  [{syscalls:.0f} syscalls, {windows:.0f} windows, {wall:.2f} s wall, {cpu:.2f} s CPU]"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=3_000_000)
    ap.add_argument("--pods", type=int, default=32)
    ap.add_argument("--policy", choices=["time", "count"], default="time")
    ap.add_argument("--modes", default="engine,agent,kafka")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    spec = spec_for(args.policy)
    served = ServedSpec(spec, policy_tag(spec.window))
    batches, total = workload(args.events, args.pods)
    values = [(b.envelope.key, b.model_dump_json().encode()) for b in batches]
    mb = sum(len(v) for _, v in values) / 1e6
    print(
        f"workload: {total} syscalls in {len(batches)} batches ({total / len(batches):.0f} per batch,"
        f" {mb:.0f} MB JSON), {args.pods} pods, policy {served.tag}"
    )
    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        for mode, fn in (("engine", run_engine), ("agent", run_agent)):
            if mode not in modes:
                continue
            fn(served, values[: max(1, len(values) // 10)], tmp)  # warm-up
            secs, cpu, windows = min((fn(served, values, tmp) for _ in range(args.repeat)), key=lambda r: r[1])
            report(f"{mode} (in-process)", total, windows, secs, cpu)
    if "kafka" in modes:
        run_kafka(args.policy, batches, values, total)


if __name__ == "__main__":
    main()
