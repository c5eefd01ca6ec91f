"""Live capture through a real tracefs instance: exact counts, fork following, pid scoping, clock."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from minerlens_collector.agent.tracefs import (
    TracefsInstance,
    TracefsSource,
    decode_pages,
    decode_pages_reference,
    find_tracefs,
    is_available,
)
from minerlens_collector.events import RawEvents
from minerlens_core.syscalls import host_arch, syscall_number

from tests.programs import build

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for tracefs"),
    pytest.mark.skipif(not is_available(), reason="tracefs (with raw_syscalls) not available"),
    pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler"),
]

GETPPID = syscall_number("getppid", host_arch())


@pytest.fixture(scope="module")
def gen() -> Path:
    """tests/programs/getppid_gen.c: ``gen N [M] [T]`` (see its header)."""
    return build("getppid_gen")


@pytest.fixture
def source() -> Iterator[TracefsSource]:
    # 32 MiB per CPU holds all 200k events of a test even if the reader is not scheduled at all
    src = TracefsSource(f"mltest{os.getpid()}", buffer_kb=32768)
    src.start()
    try:
        yield src
    finally:
        src.stop()


class Gen:
    def __init__(self, exe: Path, *args: int) -> None:
        self.proc = subprocess.Popen(
            [str(exe), *map(str, args)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.pid = int(self.proc.stdout.readline().split()[1])
        self.child = -1

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("g")
        self.proc.stdin.flush()

    def finish(self) -> None:
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        self.proc.stdout.close()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.child = int(out.split()[-1])


def collect(src: TracefsSource, *gens: Gen) -> RawEvents:
    parts = []
    while any(g.proc.poll() is None for g in gens):
        parts.append(src.poll(0.05))
    for g in gens:
        g.finish()
    for _ in range(3):
        parts.append(src.drain())
    return RawEvents.concat(parts)


def count(ev: RawEvents, tid: int) -> int:
    return int(np.count_nonzero((ev.tid == tid) & (ev.nr == GETPPID)))


def test_exact_count_without_loss(gen: Path, source: TracefsSource) -> None:
    n = 200_000
    g = Gen(gen, n)
    source.add_pids([g.pid])
    g.go()
    ev = collect(source, g)
    loss = source.loss_delta()
    assert sum(loss.values()) == 0, loss
    assert ev.missed == 0
    assert count(ev, g.pid) == n
    assert bool(np.all(np.diff(ev.ts_ns) >= 0))


def test_event_fork_follows_child(gen: Path, source: TracefsSource) -> None:
    g = Gen(gen, 1000, 50_000)
    source.add_pids([g.pid])
    g.go()
    ev = collect(source, g)
    assert g.child > 0
    assert count(ev, g.pid) == 1000
    assert count(ev, g.child) == 50_000
    assert sum(source.loss_delta().values()) == 0


def test_existing_threads_are_added(gen: Path, source: TracefsSource) -> None:
    g = Gen(gen, 20_000, 0, 2)
    tids = sorted(int(t) for t in os.listdir(f"/proc/{g.pid}/task"))
    assert len(tids) == 3
    source.add_pids([g.pid])
    assert set(tids) <= set(source.instance.pids())
    g.go()
    ev = collect(source, g)
    assert [count(ev, t) for t in tids] == [20_000] * 3


def test_process_not_in_pid_list_is_not_captured(gen: Path, source: TracefsSource) -> None:
    traced, other = Gen(gen, 30_000), Gen(gen, 30_000, 5_000)
    source.add_pids([traced.pid])
    traced.go()
    other.go()
    ev = collect(source, traced, other)
    assert count(ev, traced.pid) == 30_000
    assert not np.isin(ev.tid, [other.pid, other.child]).any()


def test_timestamps_are_wall_clock(gen: Path, source: TracefsSource) -> None:
    g = Gen(gen, 10_000)
    source.add_pids([g.pid])
    before = time.time_ns()
    g.go()
    ev = collect(source, g)
    after = time.time_ns()
    mine = ev.ts_ns[(ev.tid == g.pid) & (ev.nr == GETPPID)]
    assert len(mine) == 10_000
    assert before - 1_000_000_000 < int(mine.min()) <= int(mine.max()) < after + 1_000_000_000


def test_exited_and_bogus_pids_are_skipped(gen: Path, source: TracefsSource) -> None:
    g = Gen(gen, 10)
    g.go()
    g.finish()
    source.add_pids([g.pid])  # already reaped: skipped, no error
    assert g.pid not in source.instance.pids()
    source.set_pids([])
    assert source.instance.pids() == []


def test_fast_decoder_matches_python_walk_on_real_pages(gen: Path) -> None:
    with TracefsInstance(f"mlpages{os.getpid()}", buffer_kb=4096, subbuf_kb=16) as inst:
        assert inst.format is not None
        inst.start()
        g = Gen(gen, 50_000, 10_000)
        inst.add_pids([g.pid])
        g.go()
        g.finish()
        inst.stop()
        pages = []
        for cpu in inst.cpus:
            fd = os.open(inst.path / f"per_cpu/cpu{cpu}/trace_pipe_raw", os.O_RDONLY | os.O_NONBLOCK)
            try:
                while True:
                    try:
                        page = os.read(fd, inst.page_size)
                    except BlockingIOError:
                        break
                    if not page:
                        break
                    pages.append(page)
            finally:
                os.close(fd)
    data = b"".join(pages)
    fast, ref = decode_pages(data, inst.format), decode_pages_reference(data, inst.format)
    assert len(fast.ts) >= 60_000
    assert np.array_equal(fast.ts, ref.ts)
    assert np.array_equal(fast.tid, ref.tid)
    assert np.array_equal(fast.nr, ref.nr)


def test_instance_is_removed_on_stop() -> None:
    name = f"mlrm{os.getpid()}"
    src = TracefsSource(name, buffer_kb=256)
    src.start()
    path = find_tracefs() / "instances" / name
    assert path.is_dir()
    src.stop()
    assert not path.exists()
