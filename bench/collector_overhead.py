"""Overhead of the running collector on a traced workload: redis-server in an emulated pod, driven by
redis-benchmark from outside the pod, with and without the collector service tracing the pod.

Run as root, with the local Kafka up (scripts/kafka.sh start):
    .venv/bin/python bench/collector_overhead.py [--source tracefs|ebpf] [--rounds 3] [--requests 200000]

Rounds alternate untraced / traced so drift hits both. The collector is the real service
(`minerlens collector run`): with tracefs, capture, attribution, batching, JSON encoding, Kafka; with ebpf,
in-kernel aggregation read once a second (aggregates are not published yet: docs/collector.md). Each traced
round starts once the collector's `/healthz` shows the pod in its scope. Prints the median req/s of each
mode, their ratio, and the collector's CPU use; nothing is asserted.

`--syscall-cost N` measures instead what one syscall costs a process in a traced pod: N `getppid` calls
(tests/programs/getppid_loop.c) in the pod, its CPU time per call, untraced and with the collector running,
alternating, medians of `--rounds`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
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


def wait_ready(proc: subprocess.Popen[bytes], http_port: int, source: str, timeout_s: float = 180) -> None:
    """Until ``/healthz`` says the collector runs the wanted source with the pod in scope (a loaded machine
    can take long to start it; a fixed sleep raced it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise SystemExit(f"the collector exited with {proc.returncode}:\n{err[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=2) as r:
                h = json.load(r)
        except OSError:
            time.sleep(0.2)
            continue
        if h.get("source") != source:
            raise SystemExit(f"the collector runs source {h.get('source')!r}, not {source!r}: {h}")
        if h.get("pods", 0) >= 1 and (source == "ebpf" or h.get("traced_tasks", 0) >= 1):
            return
        time.sleep(0.2)
    raise SystemExit(f"the collector was not ready in {timeout_s:.0f} s")


def start_collector(http_port: int, source: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MINERLENS_COLLECTOR_HTTP_PORT": str(http_port),
        "MINERLENS_COLLECTOR_RESEED_INTERVAL_S": "0.5",
        "MINERLENS_COLLECTOR_SOURCE": source,
    }
    proc = subprocess.Popen([MINERLENS, "collector", "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ready(proc, http_port, source)
    except BaseException:
        proc.terminate()
        proc.wait(timeout=30)
        raise
    return proc


def metric(http_port: int, name: str) -> float:
    """A metric's value, summed over its label sets."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5).read().decode()
    return sum(float(v) for v in re.findall(rf"^{name}(?:_total)?(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M))


def ns_per_call(pod: LocalPod, exe: Path, calls: int, traced: bool) -> float:
    """CPU time per ``getppid`` of a fresh process in the pod (CPU time: robust to a shared machine)."""
    sp = pod.spawn([str(exe), str(calls), "1"], gated=True)  # held before exec until the collector scoped it
    if traced:
        time.sleep(1.2)  # two cgroup scans (tracefs seeds the pid; eBPF already counts the cgroup)
    sp.release()
    _, status, usage = os.wait4(sp.pid, 0)
    sp.proc.returncode = os.waitstatus_to_exitcode(status)
    return (usage.ru_utime + usage.ru_stime) / calls * 1e9


def syscall_cost(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "getppid_loop"
        subprocess.run(
            ["cc", "-O2", "-pthread", "-o", str(exe), str(ROOT / "tests/programs/getppid_loop.c")], check=True
        )
        rows: dict[str, list[float]] = {"untraced": [], args.source: []}
        http_port = free_port()
        with LocalPod("bench", "syscall-cost") as pod:
            for r in range(args.rounds):
                rows["untraced"].append(ns_per_call(pod, exe, args.syscall_cost, traced=False))
                collector = start_collector(http_port, args.source)
                try:
                    rows[args.source].append(ns_per_call(pod, exe, args.syscall_cost, traced=True))
                finally:
                    collector.terminate()
                    collector.wait(timeout=30)
                print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f} ns" for k, v in rows.items()), flush=True)
    u, t = statistics.median(rows["untraced"]), statistics.median(rows[args.source])
    print(f"\ngetppid in a pod, CPU time per call, {args.rounds} rounds (median):")
    print(f"  untraced {u:6.0f} ns   {args.source} {t:6.0f} ns   (+{t - u:.0f} ns per syscall)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--source", choices=("tracefs", "ebpf"), default="tracefs")
    ap.add_argument("--syscall-cost", type=int, default=0, metavar="N", help="measure per-syscall cost instead")
    args = ap.parse_args()
    if args.syscall_cost:
        if os.geteuid() != 0:
            raise SystemExit("run as root")
        syscall_cost(args)
        return
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
            collector = start_collector(http_port, args.source)
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
                lost = metric(http_port, "minerlens_collector_events_lost")
            finally:
                collector.terminate()
                collector.wait(timeout=30)
            print(
                f"round {r + 1}: untraced {rows['untraced'][-1]:,.0f} req/s, traced {rows['traced'][-1]:,.0f} "
                f"req/s, collector {cpu[-1] * 100:.0f}% of a core, {events[-1]:,.0f} syscalls/s captured, "
                f"lost {lost:.0f}",
                flush=True,
            )
    u, t = statistics.median(rows["untraced"]), statistics.median(rows["traced"])
    print(f"\nsource {args.source}; redis-benchmark -c {args.clients} -P 1 set,get, {args.rounds} rounds (median):")
    print(f"  untraced  {u:12,.0f} req/s")
    print(f"  traced    {t:12,.0f} req/s   ratio {t / u:.3f}  (throughput loss {100 * (1 - t / u):.1f}%)")
    print(
        f"  collector CPU {statistics.median(cpu) * 100:.0f}% of one core; "
        f"{statistics.median(events):,.0f} syscalls/s captured from the pod"
    )


if __name__ == "__main__":
    main()
