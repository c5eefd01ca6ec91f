"""Benchmark of the tracefs live source: capture rate, loss, reader CPU and decode throughput.

Run as root:  .venv/bin/python bench/collector_capture.py [--seconds 5] [--workers 2] [--subbuf 4,16,64]

A C load generator (forked workers calling getppid in a tight or rate-limited loop) is traced
through ``TracefsSource``; every getppid it made must be captured unless loss is reported. Prints
tables; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from minerlens_collector.agent.tracefs import (
    TracefsInstance,
    TracefsSource,
    decode_pages,
    decode_pages_reference,
    is_available,
)
from minerlens_collector.agent.tracefs import reader as reader_mod
from minerlens_collector.events import RawEvents
from minerlens_core.syscalls import host_arch, syscall_number

LOAD_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
    int w = atoi(argv[1]); double secs = atof(argv[2]), rate = atof(argv[3]); char c;
    int fds[64][2]; pid_t pids[64];
    printf("ready %d\n", getpid()); fflush(stdout);
    if (w > 64 || read(0, &c, 1) != 1) return 2;
    for (int i = 0; i < w; i++) {
        if (pipe(fds[i]) != 0) return 3;
        if ((pids[i] = fork()) == 0) {
            long n = 0; double t0 = now(), end = t0 + secs;
            const long batch = rate > 0 ? 100 : 1000;
            for (;;) {
                for (long k = 0; k < batch; k++) syscall(SYS_getppid);
                n += batch;
                double t = now();
                if (t >= end) break;
                double due = t0 + n / rate;
                if (rate > 0 && due > t) {
                    struct timespec s = {(time_t)(due - t), (long)(((due - t) - (time_t)(due - t)) * 1e9)};
                    nanosleep(&s, NULL);
                }
            }
            dprintf(fds[i][1], "%ld", n);
            _exit(0);
        }
    }
    for (int i = 0; i < w; i++) {
        char buf[64] = {0};
        waitpid(pids[i], NULL, 0);
        if (read(fds[i][0], buf, sizeof buf - 1) < 0) return 4;
        printf("%d %s\n", pids[i], buf);
    }
    fflush(stdout);
    return 0;
}
"""

GETPPID = syscall_number("getppid", host_arch())


@dataclass
class Run:
    subbuf_kb: int
    rate: float  # requested calls/s per worker (0 = unlimited)
    generated: int = 0
    captured: int = 0
    events: int = 0
    seconds: float = 0.0
    lost: int = 0
    missed_hdr: int = 0
    cpu_s: float = 0.0
    decode_s: float = 0.0
    pages: int = 0
    slow_pages: int = 0

    def add(self, ev: RawEvents) -> None:
        self.events += len(ev)
        self.captured += int(np.count_nonzero(ev.nr == GETPPID))
        self.missed_hdr += ev.missed

    @property
    def rate_captured(self) -> float:
        return self.captured / self.seconds if self.seconds else 0.0


def build(tmp: Path) -> Path:
    src, exe = tmp / "load.c", tmp / "load"
    src.write_text(LOAD_C)
    subprocess.run(["cc", "-O2", "-o", str(exe), str(src)], check=True)
    return exe


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def capture(exe: Path, workers: int, seconds: float, rate: float, subbuf_kb: int, buffer_kb: int) -> Run:
    run = Run(subbuf_kb, rate)
    src = TracefsSource(f"mlbench{os.getpid()}", buffer_kb=buffer_kb, subbuf_kb=subbuf_kb)
    src.start()
    args = [str(exe), str(workers), str(seconds), str(rate)]
    try:
        with subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdin is not None
            assert proc.stdout is not None
            src.add_pids([int(proc.stdout.readline().split()[1])])
            src.loss_delta()
            cpu0, t0 = cpu_seconds(), time.perf_counter()
            proc.stdin.write("g")
            proc.stdin.flush()
            while proc.poll() is None:
                run.add(src.poll(0.05))
            for _ in range(3):  # what the workers left in the buffers
                run.add(src.drain())
            run.seconds = time.perf_counter() - t0
            run.cpu_s = cpu_seconds() - cpu0
            run.generated = sum(int(line.split()[1]) for line in proc.stdout.read().splitlines() if line.strip())
        run.decode_s = src.reader.decode_seconds
        run.lost = sum(src.loss_delta().values())
        run.pages, run.slow_pages = src.reader.pages_read, src.reader.slow_pages
    finally:
        src.stop()
    return run


def print_runs(title: str, runs: list[Run]) -> None:
    print(f"\n{title}")
    hdr = (
        f"{'subbuf':>7} {'rate/wkr':>9} {'generated':>10} {'captured':>10} {'cap ev/s':>10} {'lost':>9} "
        f"{'hdr-miss':>9} {'exact':>5} {'reader CPU':>10} {'decode ev/s':>12} {'pages':>7} {'slow':>5}"
    )
    print(hdr)
    print("-" * len(hdr))
    for r in runs:
        exact = "yes" if r.generated == r.captured else "no"
        dec = r.events / r.decode_s if r.decode_s else 0.0
        rate = "max" if r.rate <= 0 else f"{r.rate / 1e6:.2f}M"
        print(
            f"{r.subbuf_kb:>5}KB {rate:>9} {r.generated:>10} {r.captured:>10} {r.rate_captured / 1e6:>9.2f}M "
            f"{r.lost:>9} {r.missed_hdr:>9} {exact:>5} {100 * r.cpu_s / r.seconds:>9.0f}% {dec / 1e6:>11.1f}M "
            f"{r.pages:>7} {r.slow_pages:>5}"
        )


def decode_micro(exe: Path, subbuf_kb: int) -> None:
    """Capture raw pages once, then time decode_pages on them (and the pure-Python walk)."""
    with TracefsInstance(f"mlmicro{os.getpid()}", buffer_kb=32768, subbuf_kb=subbuf_kb) as inst:
        assert inst.format is not None
        fmt = inst.format
        inst.start()
        with subprocess.Popen([str(exe), "1", "0.5", "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as proc:
            assert proc.stdin is not None
            assert proc.stdout is not None
            inst.add_pids([int(proc.stdout.readline().split()[1])])
            proc.stdin.write(b"g")
            proc.stdin.flush()
            proc.stdout.read()
        inst.stop()
        chunks: list[bytes] = []
        for cpu in inst.cpus:
            fd = os.open(inst.path / f"per_cpu/cpu{cpu}/trace_pipe_raw", os.O_RDONLY | os.O_NONBLOCK)
            try:
                while len(chunks) < 4000:
                    try:
                        page = os.read(fd, fmt.header.page_size)
                    except BlockingIOError:
                        break
                    if not page:
                        break
                    chunks.append(page)
            finally:
                os.close(fd)
    data = b"".join(chunks)
    per = max(1, reader_mod.CHUNK_BYTES // fmt.header.page_size)
    blocks = [b"".join(chunks[i : i + per]) for i in range(0, len(chunks), per)]
    n_events = len(decode_pages(data, fmt).ts)
    ref = decode_pages_reference(data, fmt)
    same = np.array_equal(ref.ts, decode_pages(data, fmt).ts)

    def rate(fn: object, arg: list[bytes]) -> float:
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 1.5:
            for b in arg:
                fn(b, fmt)  # type: ignore[operator]
            reps += 1
        return n_events * reps / (time.perf_counter() - t0)

    chunked, whole = rate(decode_pages, blocks), rate(decode_pages, [data])
    t1 = time.perf_counter()
    decode_pages_reference(data, fmt)
    walk = n_events / (time.perf_counter() - t1)
    mb = len(data) / 1e6
    print(f"\nPure decode ({subbuf_kb} KB sub-buffers, {len(chunks)} pages, {mb:.1f} MB, {n_events} events)")
    print(f"  numpy, {reader_mod.CHUNK_BYTES >> 20} MB batches (as the reader) : {chunked / 1e6:8.1f} M events/s")
    print(f"  numpy, one {mb:.0f} MB batch               : {whole / 1e6:8.1f} M events/s")
    print(f"  pure-Python walk (fallback path)     : {walk / 1e6:8.2f} M events/s")
    print(f"  numpy result == Python walk result   : {same}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--subbuf", default="4,16,64", help="sub-buffer sizes (KB) to compare")
    ap.add_argument("--buffer-kb", type=int, default=8192)
    ap.add_argument("--repeat", type=int, default=1, help="runs per sub-buffer size")
    ap.add_argument("--steps", type=int, default=5, help="runs of the rate search")
    ap.add_argument("--search", action="store_true", help="always search the highest loss-free rate")
    args = ap.parse_args()
    if os.geteuid() != 0 or not is_available():
        print("needs root and tracefs")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        exe = build(Path(tmp))
        subbufs = [int(x) for x in args.subbuf.split(",")]
        print(f"{os.cpu_count()} CPUs, {args.workers} workers x {args.seconds:.0f} s, buffer {args.buffer_kb} KB/CPU")
        full = [
            capture(exe, args.workers, args.seconds, 0, sb, args.buffer_kb)
            for sb in subbufs
            for _ in range(args.repeat)
        ]
        print_runs("Full speed (unlimited getppid loop)", full)
        best = max(full, key=lambda r: (r.lost == 0, r.rate_captured))
        if args.search or any(r.lost for r in full):
            top = max(r.rate_captured for r in full) / args.workers
            search_rate(exe, args, best.subbuf_kb, start=round(top, -5))
        decode_micro(exe, best.subbuf_kb)
        decode_micro(exe, 4)
    return 0


def search_rate(exe: Path, args: argparse.Namespace, subbuf_kb: int, start: float) -> None:
    """Bisect the per-worker rate for the highest one with zero loss (and every call captured)."""
    lo, hi = 0.0, start
    runs: list[Run] = []
    for _ in range(args.steps):
        mid = hi if not runs else (lo + hi) / 2
        r = capture(exe, args.workers, args.seconds, mid, subbuf_kb, args.buffer_kb)
        runs.append(r)
        if r.lost == 0 and r.missed_hdr == 0 and r.generated == r.captured:
            lo = mid
            if mid == hi:
                break
        else:
            hi = mid
    print_runs(f"Rate-limited search ({subbuf_kb} KB sub-buffers, {args.buffer_kb} KB/CPU)", runs)
    ok = [r for r in runs if r.lost == 0 and r.generated == r.captured]
    if ok:
        top = max(ok, key=lambda r: r.rate_captured)
        print(f"highest loss-free rate: {top.rate_captured / 1e6:.2f} M events/s captured")
    else:
        print("no loss-free rate found")


if __name__ == "__main__":
    sys.exit(main())
