"""False alerts per benign pod-hour on the live pipeline: benign lab pods side by side for a while.

Run as root with the local Kafka up (scripts/kafka.sh start):
    .venv/bin/python bench/benign_soak.py [--minutes 30] [--lanes 6] [--pod-seconds 300] [--model models/default]

Starts the real services on topics of their own (collector -> featurizer -> scorer), then keeps
``--lanes`` benign pods running at once for ``--minutes``: each lane runs the chosen catalog workloads
one after the other (lanes start at different workloads), each as a fresh emulated pod for
``--pod-seconds``. Every alert opened on the run's alerts topic is a false alert (nothing here mines).
Prints the pod time, the alerts (by workload) and alerts per 100 pod-hours with the exact Poisson 95 %
interval; nothing is asserted. Pods share 2 cores, so busy workloads slow each other (as on a busy node).
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from live_pipeline import live_pipeline
from minerlens_collector.tools.local_pod import LocalPod
from minerlens_core.kafka import make_consumer
from minerlens_core.schemas.ocsf import decode_finding
from minerlens_core.settings import KafkaSettings
from minerlens_lab.catalog import select
from minerlens_lab.live import run_live_pod
from minerlens_lab.requirements import missing_requirements
from minerlens_lab.runner import default_cache_dir
from minerlens_training.trace_level import poisson_interval

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORKLOADS = "idle,keepalive-clients,queue-workers,web,kv-cache,database,yield-heavy-runtimes,hashing-jobs"


async def collect_alerts(kafka: KafkaSettings, topic: str, stop: threading.Event, out: list[tuple[str, str]]) -> None:
    """(namespace, name) of the pods of the alerts opened on ``topic`` (OCSF activity 1) until ``stop`` is set."""
    # the alerts topic exists only once the scorer produced to it: look for it every 5 s, read it from the start
    consumer = make_consumer(
        kafka, topic, group_id=f"bench-soak-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest",
        metadata_max_age_ms=5000,
    )  # fmt: skip
    await consumer.start()
    try:
        while not stop.is_set():
            for recs in (await consumer.getmany(timeout_ms=500)).values():
                for r in recs:
                    f = decode_finding(r.value or b"")
                    if f.activity_id == 1 and f.pod is not None:
                        out.append((f.pod.namespace or "", f.pod.name or ""))
    finally:
        await consumer.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workloads", default=DEFAULT_WORKLOADS, help="benign catalog globs (name/family)")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--lanes", type=int, default=6)
    ap.add_argument("--pod-seconds", type=float, default=300.0)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    args = ap.parse_args()
    workloads = [w for w in select(args.workloads) if w.label == "benign" and not missing_requirements(w)]
    if not workloads:
        raise SystemExit(f"no benign workload can run here for {args.workloads!r}")
    deadline = time.monotonic() + 60 * args.minutes
    pod_seconds: dict[str, float] = {}
    pods_of: dict[str, str] = {}
    failures: list[str] = []
    lock = threading.Lock()

    def lane(k: int, run: str) -> None:
        i = k * max(1, len(workloads) // args.lanes)
        while (left := deadline - time.monotonic()) > 10:
            w = workloads[i % len(workloads)]
            name = f"soak-{run}-{k}-{i}"
            started: dict[str, float] = {}

            def on_start(_pod: LocalPod, s: dict[str, float] = started) -> None:
                s.setdefault("t", time.monotonic())

            try:
                run_live_pod(w, "soak", name, seconds=min(args.pod_seconds, left), cache_dir=default_cache_dir(),
                             on_start=on_start)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - one failed pod must not end the soak
                with lock:
                    failures.append(f"{w.name}: {exc}")
            if "t" in started:
                with lock:
                    pod_seconds[w.name] = pod_seconds.get(w.name, 0.0) + time.monotonic() - started["t"]
                    pods_of[name] = w.name
            i += 1

    kafka = KafkaSettings()
    opened: list[tuple[str, str]] = []
    with live_pipeline(args.model) as pipe:
        stop = threading.Event()
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, daemon=True).start()
        consumer = asyncio.run_coroutine_threadsafe(collect_alerts(kafka, pipe.topics["alerts"], stop, opened), loop)
        lanes = [threading.Thread(target=lane, args=(k, pipe.run)) for k in range(args.lanes)]
        for t in lanes:
            t.start()
        for t in lanes:
            t.join()
        time.sleep(20)  # the last windows reach the scorer, the consumer sees a topic created late
        stop.set()
        consumer.result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
    hours = sum(pod_seconds.values()) / 3600
    # the collector traces every pod of the node: alerts on pods the soak did not start are not counted
    alerts = [name for ns, name in opened if ns == "soak" and name in pods_of]
    others = sorted({f"{ns}/{name}" for ns, name in opened if not (ns == "soak" and name in pods_of)})
    by_workload = Counter(pods_of[a] for a in alerts)
    lo, hi = poisson_interval(len(alerts))
    print(f"benign pods: {len(pods_of)} pods of {len(set(pods_of.values()))} workloads, {hours:.2f} pod-hours "
          f"in {args.minutes:.0f} min ({args.lanes} at once)")  # fmt: skip
    for name, s in sorted(pod_seconds.items()):
        print(f"  {name}: {s / 60:.1f} pod-min, {by_workload.get(name, 0)} alerts")
    print(f"false alerts: {len(alerts)} -> {100 * len(alerts) / hours:.1f} per 100 pod-hours "
          f"(95 % interval {100 * lo / hours:.1f} to {100 * hi / hours:.1f})")  # fmt: skip
    if others:
        print(f"alerts on pods the soak did not start (not counted): {', '.join(others)}")
    for f in failures:
        print(f"pod failed: {f}")


if __name__ == "__main__":
    main()
