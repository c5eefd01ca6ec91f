"""Batching per (pod, container): ordering, bounds, sequence numbers, unattributed accounting.

Thread identities come from a real /proc-like tree written to tmp_path and parsed by the real resolver.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from minerlens_collector.agent.attribution import TaskResolver
from minerlens_collector.agent.batcher import Batcher
from minerlens_collector.agent.fdtable import FdTable
from minerlens_collector.cgroups import PodCgroup
from minerlens_collector.events import RawEvents
from minerlens_core.schemas import FdKind, PodRef
from minerlens_core.syscalls import Arch

UID_A = "11111111-2222-3333-4444-555555555555"
UID_B = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
CID = "c" * 64


def _task(proc: Path, tid: int, pid: int, comm: str, cgroup: str) -> None:
    d = proc / str(tid)
    d.mkdir(parents=True)
    (d / "cgroup").write_text(f"0::{cgroup}\n")
    (d / "status").write_text(f"Name:\t{comm}\nTgid:\t{pid}\nPid:\t{tid}\n")


def _proc(tmp_path: Path) -> Path:
    proc = tmp_path / "proc"
    _task(proc, 100, 100, "xmrig", f"/kubepods/burstable/pod{UID_A}/{CID}")
    _task(proc, 101, 100, "xmrig-worker", f"/kubepods/burstable/pod{UID_A}/{CID}")
    _task(proc, 200, 200, "redis-server", f"/kubepods/pod{UID_B}/{CID}")
    _task(proc, 300, 300, "sshd", "/system.slice/ssh.service")
    return proc


def _events(tids: list[int], nrs: list[int], t0: int = 1_700_000_000_000_000_000) -> RawEvents:
    n = len(tids)
    return RawEvents(
        ts_ns=np.arange(n, dtype=np.int64) * 1000 + t0,
        tid=np.array(tids, dtype=np.int32),
        nr=np.array(nrs, dtype=np.int64),
    )


def _batcher(proc: Path, **kw: object) -> Batcher:
    return Batcher(
        resolver=TaskResolver(proc=proc),
        node="node-1",
        cluster="c1",
        arch=Arch.X86_64,
        **kw,  # type: ignore[arg-type]
    )


def test_events_split_per_pod_keep_order_and_time(tmp_path: Path) -> None:
    b = _batcher(_proc(tmp_path))
    tids = [100, 200, 101, 100, 300, 200, 999]
    nrs = [24, 0, 24, 1, 7, 1, 3]
    assert b.add(_events(tids, nrs)) == []
    out = {x.envelope.pod.uid: x for x in b.flush(force=True) if x.envelope.pod}
    assert set(out) == {UID_A, UID_B}
    a = out[UID_A]
    assert a.nr == [24, 24, 1]
    assert a.tid == [100, 101, 100]
    assert a.dt_ns == [0, 2000, 3000]
    assert a.start_ns == 1_700_000_000_000_000_000
    assert a.envelope.container_id == CID
    assert {(t.tid, t.pid, t.comm) for t in a.tasks} == {(100, 100, "xmrig"), (101, 100, "xmrig-worker")}
    assert out[UID_B].nr == [0, 1]
    assert b.stats.outside_pods == 1  # sshd
    assert b.stats.unattributed == 1  # tid 999 vanished before it was resolved
    assert b.stats.events_batched == 5


def test_size_bound_splits_and_sequence_numbers_increase(tmp_path: Path) -> None:
    b = _batcher(_proc(tmp_path), max_events=4)
    full = b.add(_events([100] * 10, list(range(10))))
    rest = b.flush(force=True)
    batches = full + rest
    assert [len(x) for x in batches] == [4, 4, 2]
    assert [x.seq for x in batches] == [0, 1, 2]
    assert [nr for x in batches for nr in x.nr] == list(range(10))


def test_age_bound_flushes_old_streams(tmp_path: Path) -> None:
    now = [0.0]
    b = _batcher(_proc(tmp_path), max_age_s=1.0, clock=lambda: now[0])
    assert b.add(_events([200], [0])) == []
    now[0] = 0.5
    assert b.flush(force=False) == []
    now[0] = 1.01
    assert [len(x) for x in b.flush(force=False)] == [1]


def test_include_node_reports_host_processes(tmp_path: Path) -> None:
    b = _batcher(_proc(tmp_path), include_node=True)
    b.add(_events([300, 300], [7, 8]))
    (batch,) = b.flush(force=True)
    assert batch.envelope.pod is not None
    assert batch.envelope.pod.uid == "node"


def test_pod_lookup_enriches_names(tmp_path: Path) -> None:
    names = {UID_B: PodRef(uid=UID_B, namespace="cache", name="redis-0", labels={"app": "redis"})}
    b = _batcher(_proc(tmp_path), pod_lookup=names.get)
    b.add(_events([200], [0]))
    (batch,) = b.flush(force=True)
    assert batch.envelope.pod == names[UID_B]


def test_events_without_time_have_no_offsets(tmp_path: Path) -> None:
    b = _batcher(_proc(tmp_path))
    ev = _events([200, 200], [0, 1])
    ev.ts_ns[:] = -1
    b.add(ev)
    (batch,) = b.flush(force=True)
    assert batch.start_ns is None
    assert batch.dt_ns is None


def test_io_calls_carry_the_kind_of_their_fd(tmp_path: Path) -> None:
    """The tagger reads fd links from the same /proc tree as the resolver (here: real symlinks)."""
    proc = _proc(tmp_path)
    fd_dir = proc / "100" / "fd"
    fd_dir.mkdir()
    (fd_dir / "3").symlink_to("/var/lib/xmrig/config.json")
    (fd_dir / "4").symlink_to("pipe:[4242]")
    (fd_dir / "5").symlink_to("/dev/null")
    table = FdTable(Arch.X86_64, str(proc))
    b = _batcher(proc, fd_table=table)
    write, read, getpid = 1, 0, 39  # x86_64
    ev = _events([100, 101, 100, 100, 200], [write, read, getpid, write, write])
    ev.arg0 = np.array([3, 4, 3, 5, 3], dtype=np.int64)  # tid 101 is a thread of process 100
    b.add(ev)
    out = {x.envelope.pod.uid: x for x in b.flush(force=True) if x.envelope.pod}
    assert out[UID_A].fd_kind == [FdKind.FILE, FdKind.PIPE, 0, FdKind.DEVICE]
    assert out[UID_B].fd_kind == [0]  # process 200 has no fd 3
    assert table.lookups == 4


def test_without_decoded_arguments_there_are_no_tags(tmp_path: Path) -> None:
    b = _batcher(_proc(tmp_path), fd_table=FdTable(Arch.X86_64))
    b.add(_events([100], [1]))  # arg0 None: a source that cannot decode arguments (strace)
    (batch,) = b.flush(force=True)
    assert batch.fd_kind is None


def test_a_thread_that_execs_is_renamed_and_hostile_names_are_cleaned(tmp_path: Path) -> None:
    proc = _proc(tmp_path)
    b = _batcher(proc)
    b.add(_events([100], [0]))
    (first,) = b.flush(force=True)
    assert {t.comm for t in first.tasks} == {"xmrig"}
    (proc / "100" / "status").write_text("Name:\tkworker\x1b[2J\nTgid:\t100\nPid:\t100\n")
    b.add(_events([100, 100], [59, 0]))  # execve: the old name is not kept for 30 s
    (second,) = b.flush(force=True)
    assert {t.comm for t in second.tasks} == {"kworker?[2J"}


def test_numbers_that_are_no_syscall_do_not_stop_the_batcher(tmp_path: Path) -> None:
    """``syscall(-1)`` from a pod reaches the tracepoint as id -1 (test_capture_live checks the kernel
    side): it is sent as the 'unknown' number, never refused by the contract."""
    b = _batcher(_proc(tmp_path))
    b.add(_events([100, 100, 100], [-1, 1 << 40, 39]))
    (batch,) = b.flush(force=True)
    assert batch.nr == [1 << 20, 1 << 20, 39]


def test_hostile_command_names_never_reach_the_contract(tmp_path: Path) -> None:
    proc = _proc(tmp_path)
    (proc / "100" / "status").write_text("Name:\ta\u202eb\u2028c\x85d\nTgid:\t100\nPid:\t100\n")
    b = _batcher(proc)
    b.add(_events([100], [0]))
    (batch,) = b.flush(force=True)
    assert {t.comm for t in batch.tasks} == {"a?b?c?d"}


def test_a_reused_tid_keeps_the_name_the_tracer_recorded_not_the_new_tasks(tmp_path: Path) -> None:
    """The pod's scan saw tid 300 inside the pod; by the time its events are resolved the tid belongs to
    a task outside every pod (sshd here). The events stay the pod's and keep the traced task's name."""
    proc = _proc(tmp_path)
    recorded = {300: (300, "miner-helper")}
    resolver = TaskResolver(proc=proc, exited=recorded.get)
    resolver.hints[300] = PodCgroup(UID_A, "burstable")
    ident = resolver.resolve(300)
    assert ident.pod is not None
    assert ident.pod.pod_uid == UID_A
    assert (ident.pid, ident.comm) == (300, "miner-helper")
    # without the tracer's record the live task's identity is all there is
    bare = TaskResolver(proc=proc)
    bare.hints[300] = PodCgroup(UID_A, "burstable")
    assert bare.resolve(300).comm == "sshd"
