"""Parity: one workload captured both ways at once — tracefs (every raw event) and the eBPF source (in-kernel
aggregates, published as ``SyscallAggregate``) — gives the same counts and n-grams, exactly.

The reference for the raw side is ``minerlens_core.features.aggregates.aggregate_events``: what a featurizer
computes from raw batches. Sampled sequences aside (they are a sample by design).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from minerlens_collector.agent.discovery import scan_pods
from minerlens_collector.agent.ebpf import EbpfSource
from minerlens_collector.agent.ebpf.messages import AggregateMessages
from minerlens_collector.agent.tracefs import TracefsSource, is_available
from minerlens_collector.events import RawEvents
from minerlens_collector.tools.local_pod import LocalPod
from minerlens_core.features.aggregates import StreamAggregates, aggregate_events
from minerlens_core.schemas.aggregates import SyscallAggregate
from minerlens_core.syscalls import host_arch

from tests.collector.test_ebpf_source_live import CGROUP_ROOT, _kernel_can_load_bpf  # noqa: F401  (skip/fail rule)

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(not is_available(), reason="tracefs not available")]

MIXED_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static long n;
/* each thread its own interleaving of cheap (getppid, getuid, clock_gettime) and no-cheap calls */
static void *worker(void *arg) {
    long k = (long)arg; char b[64]; struct timespec ts;
    int z = open("/dev/zero", O_RDONLY), nul = open("/dev/null", O_WRONLY);
    for (long i = 0; i < n; i++) {
        switch ((i * (k + 1)) % 5) {
        case 0: syscall(SYS_getppid); break;
        case 1: if (read(z, b, sizeof b) < 0) return NULL; break;
        case 2: if (write(nul, b, 8) < 0) return NULL; break;
        case 3: sched_yield(); break;
        default: syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
        }
        if (i % 7 == k) syscall(SYS_getuid);
    }
    close(z); close(nul);
    return NULL;
}
int main(int argc, char **argv) {
    pthread_t th[16]; int t = atoi(argv[2]);
    n = atol(argv[1]);
    if (t < 1 || t > 16) return 2;
    for (long i = 1; i < t; i++) pthread_create(&th[i], NULL, worker, (void *)i);
    worker(NULL);
    for (int i = 1; i < t; i++) pthread_join(th[i], NULL);
    return 0;
}
"""


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("mixed")
    (d / "mixed.c").write_text(MIXED_C)
    subprocess.run(["cc", "-O2", "-pthread", "-o", str(d / "mixed"), str(d / "mixed.c")], check=True)
    return d / "mixed"


def test_same_counts_and_ngrams_from_tracefs_and_ebpf(mixed: Path) -> None:
    tracefs = TracefsSource(f"mlparity{os.getpid()}", buffer_kb=32768)  # holds the whole run
    ebpf = EbpfSource(CGROUP_ROOT, sample_budget=32)
    tracefs.start()
    ebpf.start()
    try:
        with LocalPod("ebpf", "parity") as pod:
            sp = pod.spawn([str(mixed), "20000", "3"], gated=True)  # held before exec: both start at release
            tracefs.add_pids([sp.pid])
            ebpf.set_streams({k: d for k, d in scan_pods(CGROUP_ROOT).dirs.items() if k[0] == pod.uid})
            ebpf.read_window()
            sp.release()
            parts = []
            while sp.proc.poll() is None:
                parts.append(tracefs.poll(0.05))
            parts += [tracefs.poll(0.05) for _ in range(4)]
            win = ebpf.read_window()
            assert sp.proc.returncode == 0
            raw = RawEvents.concat(parts)
            assert raw.missed == 0
            assert not any(tracefs.loss_delta().values())
            messages = AggregateMessages("n1", "c", host_arch(), ebpf.cheap).build(win)
    finally:
        ebpf.stop()
        tracefs.stop()
    assert not any(win.lost.values())
    (msg,) = [m for m in messages if m.envelope.container_id == pod.container_id]
    msg = SyscallAggregate.model_validate_json(msg.model_dump_json())  # what a consumer reads
    got = StreamAggregates.from_message(msg)
    want = aggregate_events(raw.nr, raw.tid, np.full(len(raw), sp.pid), ebpf.cheap)
    assert len(raw) > 60_000
    assert sum(got.counts.values()) == len(raw)
    assert got.counts == want.counts
    assert got.ngram2 == want.ngram2
    assert got.ngram3 == want.ngram3
    assert len({t for _, t, _ in got.counts}) == 3
    assert len(got.ngram3) > 10
    assert {t.pid for t in msg.tasks} == {sp.pid}
    assert 0 < len(msg.samples.nr) <= 32 + (os.cpu_count() or 1)
