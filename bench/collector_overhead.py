"""Overhead of the running collector on a traced workload: redis-server in an emulated pod, driven by
redis-benchmark from outside the pod, with and without the collector service tracing the pod.

Run as root, with the local Kafka up (scripts/kafka.sh start):
    .venv/bin/python bench/collector_overhead.py [--rounds 3] [--requests 200000] [--clients 8]

Rounds alternate untraced / traced so drift hits both. The collector is the real service
(`minerlens collector run`: tracefs capture, attribution, batching, JSON encoding, Kafka). Prints the
median req/s of each mode, their ratio, and the collector's CPU use; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from minerlens_collector.tools.local_pod import LocalPod

ROOT = Path(__file__).resolve().parents[1]
MINERLENS = str(Path(sys.executable).parent / "minerlens")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int) -> None:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"redis did not listen on {port}")


def bench(port: int, requests: int, clients: int) -> float:
    out = subprocess.run(
        [
            "redis-benchmark",
            "-p",
            str(port),
            "-n",
            str(requests),
            "-c",
            str(clients),
            "-P",
            "1",
            "-t",
            "set,get",
            "--csv",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rates = [float(m.group(1)) for m in re.finditer(r'^"(?:SET|GET)","([0-9.]+)"', out, re.M)]
    return statistics.mean(rates)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_collector(http_port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MINERLENS_COLLECTOR_HTTP_PORT": str(http_port),
        "MINERLENS_COLLECTOR_RESEED_INTERVAL_S": "0.5",
    }
    proc = subprocess.Popen([MINERLENS, "collector", "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(3)  # start-up and the first cgroup scans
    return proc


def metric(http_port: int, name: str) -> float:
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5).read().decode()
    m = re.search(rf"^{name}(?:_total)? ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    if os.geteuid() != 0 or shutil.which("redis-benchmark") is None:
        raise SystemExit("run as root with redis-server and redis-benchmark installed")
    port, http_port = free_port(), free_port()
    rows: dict[str, list[float]] = {"untraced": [], "traced": []}
    cpu: list[float] = []
    events: list[float] = []
    with LocalPod("bench", "redis-0") as pod:
        pod.spawn(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        wait_port(port)
        bench(port, 20_000, args.clients)  # warm-up
        for r in range(args.rounds):
            rows["untraced"].append(bench(port, args.requests, args.clients))
            collector = start_collector(http_port)
            try:
                c0, e0, t0 = (
                    cpu_seconds(collector.pid),
                    metric(http_port, "minerlens_collector_events_captured"),
                    time.time(),
                )
                rows["traced"].append(bench(port, args.requests, args.clients))
                c1, e1, t1 = (
                    cpu_seconds(collector.pid),
                    metric(http_port, "minerlens_collector_events_captured"),
                    time.time(),
                )
                cpu.append((c1 - c0) / (t1 - t0))
                events.append((e1 - e0) / (t1 - t0))
                lost = metric(http_port, 'minerlens_collector_events_lost_total{reason="ring_buffer_overrun"}')
            finally:
                collector.terminate()
                collector.wait(timeout=30)
            print(
                f"round {r + 1}: untraced {rows['untraced'][-1]:,.0f} req/s, traced {rows['traced'][-1]:,.0f} "
                f"req/s, collector {cpu[-1] * 100:.0f}% of a core, {events[-1]:,.0f} syscalls/s captured, "
                f"overrun-lost {lost:.0f}",
                flush=True,
            )
    u, t = statistics.median(rows["untraced"]), statistics.median(rows["traced"])
    print(f"\nredis-benchmark -c {args.clients} -P 1 set,get, {args.rounds} rounds (median):")
    print(f"  untraced  {u:12,.0f} req/s")
    print(f"  traced    {t:12,.0f} req/s   ratio {t / u:.3f}  (throughput loss {100 * (1 - t / u):.1f}%)")
    print(
        f"  collector CPU {statistics.median(cpu) * 100:.0f}% of one core; "
        f"{statistics.median(events):,.0f} syscalls/s captured from the pod"
    )


if __name__ == "__main__":
    main()
