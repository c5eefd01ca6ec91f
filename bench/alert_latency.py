"""Alert latency in the demo setting: a real miner pod starts -> its OCSF alert is on Kafka.

Run as root with the local Kafka up (scripts/kafka.sh start):
    .venv/bin/python bench/alert_latency.py [--rounds 3] [--workload miner-randomx-no-yield] [--model models/default]

Starts the real services on topics of their own (collector -> featurizer -> scorer), then per round
runs the miner from the lab catalog as a fresh emulated pod and measures wall time from the pod's
start to the first alert for that pod on the alerts topic, and — for a miner that logs when it starts
hashing (XMRig: `READY threads`, after `dataset ready` in fast mode) — from that moment (negative: the
alert came while it was still building its dataset). Prints each round and the medians; nothing is
asserted. The collector traces every pod on the node, so other pods running meanwhile add load.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
import uuid
from pathlib import Path

from live_pipeline import live_pipeline
from minerlens_core.kafka import make_consumer
from minerlens_core.schemas.ocsf import decode_finding
from minerlens_core.settings import KafkaSettings
from minerlens_lab.catalog import select
from minerlens_lab.live import LivePodResult, run_live_pod
from minerlens_lab.runner import default_cache_dir

ROOT = Path(__file__).resolve().parents[1]


async def first_alert(kafka: KafkaSettings, topic: str, namespace: str, name: str, timeout_s: float) -> float | None:
    consumer = make_consumer(kafka, topic, group_id=f"bench-alert-{uuid.uuid4().hex[:8]}", auto_offset_reset="latest")
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                for r in recs:
                    f = decode_finding(r.value or b"")
                    if f.pod is not None and (f.pod.namespace, f.pod.name) == (namespace, name):
                        return time.monotonic()
    finally:
        await consumer.stop()
    return None


def hashing_started_s(facts: dict[str, object]) -> float | None:
    """Seconds from the miner's first log line to its first hash: XMRig's dataset build (fast mode), else READY."""
    for key in ("dataset_ready_s", "ready_s"):
        v = facts.get(key)
        if isinstance(v, int | float):
            return float(v)
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workload", default="miner-randomx-no-yield")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--hold", type=float, default=35.0, help="keep the pod at least this long (its first hash)")
    args = ap.parse_args()
    (workload,) = [w for w in select(args.workload) if w.name == args.workload]
    kafka = KafkaSettings()
    latencies: list[float] = []
    after_hashing: list[float] = []
    with live_pipeline(args.model) as pipe:
        run, t = pipe.run, pipe.topics
        for k in range(args.rounds):
            ns, name = "bench", f"miner-{run}-{k}"
            stop = threading.Event()
            started: dict[str, float] = {}
            results: list[LivePodResult] = []
            pod = threading.Thread(
                target=lambda *a, out=results, **kw: out.append(run_live_pod(*a, **kw)),
                args=(workload, ns, name),
                kwargs={"seconds": args.timeout, "cache_dir": default_cache_dir(), "stop": stop,
                        "on_start": lambda _p, s=started: s.setdefault("t", time.monotonic())},
            )  # fmt: skip
            alert = asyncio.run_coroutine_threadsafe(
                first_alert(kafka, t["alerts"], ns, name, args.timeout), loop := asyncio.new_event_loop()
            )
            threading.Thread(target=loop.run_forever, daemon=True).start()
            time.sleep(1)  # the alert consumer is assigned before the pod starts
            pod.start()
            at = alert.result(timeout=args.timeout + 30)
            if "t" in started:  # let the miner reach its first hash, so that its log says when that was
                stop.wait(max(0.0, args.hold - (time.monotonic() - started["t"])))
            stop.set()
            pod.join()
            loop.call_soon_threadsafe(loop.stop)
            if at is None or "t" not in started:
                print(f"round {k + 1}: no alert within {args.timeout:.0f} s")
                continue
            latencies.append(at - started["t"])
            line = f"round {k + 1}: alert {latencies[-1]:.1f} s after the miner pod started"
            hashing = hashing_started_s(results[0].facts) if results else None
            if hashing is not None:
                after_hashing.append(latencies[-1] - hashing)
                line += f", {after_hashing[-1]:.1f} s after it started hashing ({hashing:.1f} s in)"
            print(line)
    if latencies:
        print(f"alert latency ({args.workload}, {len(latencies)}/{args.rounds} rounds alerted): "
              f"median {statistics.median(latencies):.1f} s, max {max(latencies):.1f} s")  # fmt: skip
    if after_hashing:
        print(f"after hashing started: median {statistics.median(after_hashing):.1f} s, "
              f"max {max(after_hashing):.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
