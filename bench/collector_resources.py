"""Benchmark of the collector's resource sampler and fd tagger: what one sampling round costs.

Run as root:  .venv/bin/python bench/collector_resources.py [--rounds 20]

A pod (kubelet-named cgroups, ``LocalPod``) holds P copies of a small C program with T sleeping threads
and F open fds (half unix sockets, half /dev/null); the sampler reads it every round as the collector
does every second. Prints the sampler's CPU time per round and per process (thread CPU time of the
sampling thread, so other load on the machine does not count), then the tagger's cost per event.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from minerlens_collector.agent.cgroup_stats import CgroupReader
from minerlens_collector.agent.fdtable import FdTable
from minerlens_collector.agent.resources import ResourceSampler, SampleTarget
from minerlens_collector.tools.local_pod import LocalPod
from minerlens_core.syscalls import host_arch, syscall_number

HOLDER_C = r"""
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
static void *idle(void *a) { (void)a; for (;;) pause(); return NULL; }
int main(int argc, char **argv) {
    int threads = atoi(argv[1]), fds = atoi(argv[2]);
    for (int i = 1; i < threads; i++) { pthread_t t; pthread_create(&t, NULL, idle, NULL); }
    for (int i = 0; i < fds / 2; i++) { int p[2]; socketpair(AF_UNIX, SOCK_STREAM, 0, p); }
    for (int i = 0; i < fds - fds / 2 * 2; i++) open("/dev/null", O_RDONLY);
    for (;;) pause();
}
"""


def build(tmp: Path) -> Path:
    src, exe = tmp / "holder.c", tmp / "holder"
    src.write_text(HOLDER_C)
    subprocess.run(["cc", "-O2", "-pthread", "-o", str(exe), str(src)], check=True)
    return exe


def measure(exe: Path, procs: int, threads: int, fds: int, rounds: int) -> tuple[float, float, int]:
    """(median CPU ms per round, median wall ms per round, processes listed)."""
    sampler = ResourceSampler(CgroupReader.at(Path("/sys/fs/cgroup")))
    with LocalPod("bench", f"holder-{procs}") as pod:
        for _ in range(procs):
            pod.spawn([str(exe), str(threads), str(fds)])
        time.sleep(0.5 + procs / 200)
        target = {("bench", ""): SampleTarget(pod.cgroup_path.lstrip("/"))}
        sampler.sample(target)  # warm: the first round also ranks
        cpu: list[float] = []
        wall: list[float] = []
        listed = 0
        for _ in range(rounds):
            c0, w0 = time.thread_time(), time.perf_counter()
            rnd = sampler.sample(target)
            cpu.append(time.thread_time() - c0)
            wall.append(time.perf_counter() - w0)
            listed = len(rnd.snapshots[("bench", "")].processes)
    return statistics.median(cpu) * 1e3, statistics.median(wall) * 1e3, listed


def tagging(n: int = 2_000_000) -> None:
    """Tagger throughput on events of this process: 30 % writes over 8 open fds, the rest getppid."""
    arch = host_arch()
    write, other = syscall_number("write", arch), syscall_number("getppid", arch)
    assert write is not None
    assert other is not None
    fds = [os.open("/dev/null", os.O_WRONLY) for _ in range(8)]
    try:
        rng = np.random.default_rng(1)
        nr = np.where(rng.random(n) < 0.3, write, other).astype(np.int64)
        arg0 = rng.choice(np.asarray(fds, np.int64), n)
        pid = np.full(n, os.getpid(), np.int64)
        table = FdTable(arch)
        for chunk in (4096, 65536):
            t0 = time.perf_counter()
            for lo in range(0, n, chunk):
                table.tag(pid[lo : lo + chunk], nr[lo : lo + chunk], arg0[lo : lo + chunk])
            dt = time.perf_counter() - t0
            print(f"  tag(): {n / dt / 1e6:6.1f} M events/s ({dt / n * 1e9:5.1f} ns/event) in chunks of {chunk}")
        quiet = np.full(n, other, np.int64)
        t0 = time.perf_counter()
        for lo in range(0, n, 65536):
            table.tag(pid[lo : lo + 65536], quiet[lo : lo + 65536], arg0[lo : lo + 65536])
        dt = time.perf_counter() - t0
        print(f"  tag() on no I/O at all (getppid only): {dt / n * 1e9:5.1f} ns/event")
    finally:
        for fd in fds:
            os.close(fd)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (cgroups)")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        exe = build(Path(tmp))
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds each")
        hdr = (
            f"{'processes':>9} {'threads':>7} {'fds':>5} {'listed':>6} "
            f"{'CPU ms/round':>12} {'wall ms':>8} {'CPU us/process':>14}"
        )
        print(hdr)
        print("-" * len(hdr))
        for procs, threads, fds in ((1, 4, 16), (10, 8, 32), (100, 8, 32), (300, 2, 8), (1, 200, 16), (1, 2, 4000)):
            cpu, wall, listed = measure(exe, procs, threads, fds, args.rounds)
            print(f"{procs:>9} {threads:>7} {fds:>5} {listed:>6} {cpu:>12.2f} {wall:>8.2f} {cpu * 1e3 / procs:>14.0f}")
    print("\nfd tagger (Batcher.add calls it once per poll)")
    tagging()
    return 0


if __name__ == "__main__":
    sys.exit(main())
