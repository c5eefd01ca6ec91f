"""Windows and features in operator terms: real windows (feature library, resource samples) described with
the right quantities, every feature name of v1 and v2 specs worded, n-gram buckets named by syscalls, and
hostile vectors never breaking the wording.

The window builders here (``lab_windows``) are also what tests/scorer/test_reasons.py ranks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest
from minerlens_core.features import (
    FeatureSpec,
    FeatureWording,
    Window,
    WindowDescriber,
    WindowIds,
    WindowPolicy,
    behaviour_summary,
    index_of,
    ngram_buckets,
    vectorize_many,
    windows_from_trace,
)
from minerlens_core.features.describe import num, share
from minerlens_core.schemas.resources import FdCounts, FdKind, ProcessSample, ResourceSnapshot
from minerlens_core.schemas.windows import ProcessRef
from minerlens_core.traces import TRACE_SCHEMA, StreamSample, Trace, TraceMeta

T0 = 1_700_000_000 * 10**9  # an even number of 2-s slots since the epoch
S = 10**9
TIME2 = WindowPolicy.time(2.0)
V2 = FeatureSpec.build(TIME2)
V1 = FeatureSpec.build(TIME2, version="1")
INET, FILE, NOFD = int(FdKind.SOCKET_INET), int(FdKind.FILE), int(FdKind.UNKNOWN)
Row = tuple[float | None, str, int, int, str, int | None]
"""(t seconds or None, syscall, tid, pid, comm, fd kind)"""
BARE_BUCKET = re.compile(r"(#\s*\d+|bucket\s*\d+|pattern\s*\d+)")


def _table(rows: list[Row], pod: str = "u") -> pa.Table:
    n = len(rows)
    return pa.Table.from_pydict(
        {
            "ts_ns": [None if r[0] is None else T0 + round(r[0] * S) for r in rows],
            "pod_uid": [pod] * n,
            "namespace": ["ns"] * n,
            "pod_name": [pod] * n,
            "container_id": [""] * n,
            "pid": [r[3] for r in rows],
            "tid": [r[2] for r in rows],
            "comm": [r[4] for r in rows],
            "nr": [None] * n,
            "syscall": [r[1] for r in rows],
            "arch": ["x86_64"] * n,
            "fd_kind": [r[5] for r in rows],
        },
        schema=TRACE_SCHEMA,
    )


@dataclass(frozen=True)
class Proc:
    pid: int
    comm: str
    cores: float
    threads: int
    running: int
    rss_mb: int
    fds: FdCounts
    hugetlb_mb: int = 0


def _samples(procs: list[Proc], seconds: float, memory_mb: int | None = None) -> list[ResourceSnapshot]:
    """A sample every second from -0.5 s: cumulative CPU of each process at its constant rate."""
    out = []
    for t in np.arange(-0.5, seconds + 1.0, 1.0):
        ps = [
            ProcessSample(
                pid=p.pid,
                comm=p.comm,
                exe=f"/usr/bin/{p.comm}",
                cpu_ns=round((100 + p.cores * t) * 1e9),
                threads=p.threads,
                running=p.running,
                rss_bytes=p.rss_mb * 2**20,
                hugetlb_bytes=p.hugetlb_mb * 2**20,
                fds=p.fds,
            )
            for p in procs
        ]
        out.append(
            ResourceSnapshot(
                ts_ns=T0 + round(float(t) * S),
                cpu_ns=round((100 + sum(p.cores for p in procs) * t) * 1e9),
                throttled_ns=0,
                memory_bytes=(memory_mb or sum(p.rss_mb for p in procs)) * 2**20,
                hugetlb_bytes=sum(p.hugetlb_mb for p in procs) * 2**20,
                threads=sum(p.threads for p in procs),
                processes=ps,
            )
        )
    return out


def _trace(rows: list[Row], samples: list[ResourceSnapshot], pod: str = "u") -> Trace:
    rows = sorted(rows, key=lambda r: -1.0 if r[0] is None else r[0])
    return Trace(_table(rows, pod), TraceMeta(source="test"), [StreamSample(pod_uid=pod, sample=s) for s in samples])


MINER = Proc(10, "xmrig", cores=2.0, threads=3, running=2, rss_mb=2400, fds=FdCounts(socket_inet=1, file=2, anon=2))


def miner_trace(seconds: int = 8, per_s: int = 20) -> Trace:
    """A no-yield miner: 2 cores busy, ``per_s`` syscalls/s (futex/clock_gettime between hash rounds),
    one TCP socket to the pool read once at t = 3 s, no file I/O."""
    rows: list[Row] = []
    for k in range(seconds * per_s):
        t = (k + 0.5) / per_s
        if k == 3 * per_s:
            rows.append((t, "read", 13, 10, "xmrig", INET))
        else:
            rows.append((t, ("futex", "clock_gettime")[k % 2], 11 + k % 2, 10, "xmrig", NOFD))
    return _trace(rows, _samples([MINER], seconds))


def idle_trace(seconds: int = 8) -> Trace:
    """redis doing nothing: one epoll_wait a second, almost no CPU, 2 client sockets open."""
    p = Proc(5, "redis-server", cores=0.001, threads=4, running=0, rss_mb=12, fds=FdCounts(socket_inet=2, file=3))
    rows: list[Row] = [(k + 0.1, "epoll_wait", 5, 5, "redis-server", NOFD) for k in range(seconds)]
    return _trace(rows, _samples([p], seconds))


def web_trace(seconds: int = 4, per_s: int = 10_000) -> Trace:
    """nginx under load: 10,000 syscalls/s, socket I/O to clients and file reads, 0.6 cores."""
    p = Proc(20, "nginx", cores=0.6, threads=5, running=1, rss_mb=64, fds=FdCounts(socket_inet=200, file=30))
    cycle = [
        ("epoll_wait", NOFD),
        ("accept4", NOFD),
        ("recvfrom", INET),
        ("openat", NOFD),
        ("read", FILE),
        ("writev", INET),
        ("close", NOFD),
        ("clock_gettime", NOFD),
    ]
    rows: list[Row] = []
    for k in range(seconds * per_s):
        name, kind = cycle[k % len(cycle)]
        rows.append(((k + 0.5) / per_s, name, 20 + (k // 8) % 4, 20, "nginx", kind))
    return _trace(rows, _samples([p], seconds))


def cpu_only_trace(seconds: int = 6) -> Trace:
    """A miner whose hashing threads never enter the kernel: samples, not a single syscall."""
    return Trace(
        _table([]), TraceMeta(source="test"), [StreamSample(pod_uid="u", sample=s) for s in _samples([MINER], seconds)]
    )


def order_only_table(n: int = 1000) -> pa.Table:
    """An order-only trace (strace without -t): no timestamps at all."""
    names = ("read", "write", "futex", "getpid")
    return _table([(None, names[k % 4], 7 + k % 3, 7, "x", None) for k in range(n)])


def lab_windows(trace: Trace | pa.Table, spec: FeatureSpec = V2) -> tuple[list[Window], npt.NDArray[np.float32]]:
    """The complete windows of a trace and their vectors."""
    ws = [w for w in windows_from_trace(trace, spec.window) if w.complete]
    return ws, vectorize_many(ws, spec)


# ---- the summary sentence -------------------------------------------------------------------------


def test_no_yield_miner_summary_says_cores_rate_sockets_and_no_file_io() -> None:
    ws, X = lab_windows(miner_trace())
    assert len(ws) >= 3
    first = next(i for i, w in enumerate(ws) if w.start_ns == T0 + 2 * S)  # holds the socket read at 3 s
    text = behaviour_summary(X[first], V2.names)
    assert text.startswith("2.0 cores busy while making 20 syscalls/s (10 per CPU-second)"), text
    assert "3 threads (2 runnable)" in text
    assert "2.3 GB memory, no huge pages" in text
    assert "1 TCP/UDP socket open" in text
    assert "1 socket I/O call (0.5/s, 1 on TCP/UDP)" in text
    assert "0 file I/O" in text
    assert re.search(r"top syscalls: clock_gettime 50%, futex 4[78]%, read 2.5%\.$", text), text
    assert "unknown" not in text
    later = behaviour_summary(X[first + 1], V2.names)
    assert "0 socket I/O, 0 file I/O" in later
    assert "top syscalls: clock_gettime 50%, futex 50%" in later


def test_summary_quotes_the_benign_range_per_cpu_second() -> None:
    _, X = lab_windows(miner_trace())
    benign = {"res.log_syscalls_per_cpu_s": (math.log10(1 + 300.0), math.log10(1 + 9000.0))}
    text = WindowDescriber(V2.names, V2, benign).summary(X[1])
    assert "20 syscalls/s (10 per CPU-second; benign pods: 300-9,000 syscalls per CPU-second)" in text


def test_process_is_named() -> None:
    _, X = lab_windows(miner_trace())
    ref = ProcessRef(pid=10, comm="xmrig", exe="/usr/bin/xmrig", cpu_cores=2.0)
    own = behaviour_summary(X[1], V2.names, process=ref, scope="process")
    assert own.startswith("Process xmrig (pid 10, /usr/bin/xmrig, 2.0 cores): 2.0 cores busy")
    pod = behaviour_summary(X[1], V2.names, process=ref)
    assert pod.startswith("2.0 cores busy")
    assert pod.endswith("; busiest process xmrig (pid 10, /usr/bin/xmrig, 2.0 cores).")


def test_idle_pod_summary() -> None:
    _, X = lab_windows(idle_trace())
    text = behaviour_summary(X[1], V2.names)
    assert text.startswith("< 0.01 cores busy while making 1 syscall/s"), text
    assert "4 threads (0 runnable)" in text
    assert "12 MB memory" in text
    assert "2 TCP/UDP sockets open, 3 files open, 0 socket I/O, 0 file I/O" in text
    assert "top syscalls: epoll_wait 100%" in text


def test_busy_web_server_summary() -> None:
    ws, X = lab_windows(web_trace())
    assert [w.count for w in ws] == [20_000]
    text = behaviour_summary(X[0], V2.names)
    assert text.startswith("0.6 cores busy while making 10,000 syscalls/s (16,667 per CPU-second)"), text
    assert "5 threads (1 runnable)" in text
    assert "200 TCP/UDP sockets open, 30 files open" in text
    # of the 7 non-trivial calls of each cycle, 3 are socket I/O (accept4, recvfrom and writev, the last two
    # on TCP/UDP fds) and 2 file I/O (openat, read of a file fd)
    assert "7,500 socket I/O calls (3,750/s, 5,000 on TCP/UDP)" in text
    assert "5,000 file I/O calls (2,500/s)" in text


def test_cpu_only_window_says_no_syscalls() -> None:
    ws, X = lab_windows(cpu_only_trace())
    assert ws
    assert all(w.count == 0 for w in ws)
    text = behaviour_summary(X[0], V2.names)
    assert text.startswith("2.0 cores busy while making no syscalls;"), text
    assert "0 socket I/O, 0 file I/O" in text
    assert "top syscalls" not in text


def test_version_1_window_makes_up_no_cpu() -> None:
    _, X = lab_windows(miner_trace(), V1)
    text = behaviour_summary(X[1], V1.names)
    assert text.startswith("20 syscalls/s; 2 threads made calls; "), text
    assert "CPU, memory, open sockets and socket vs file I/O unknown (not measured)" in text
    assert "cores" not in text
    assert "memory" not in text.split("unknown")[1]


def test_count_window_without_time_has_no_rates() -> None:
    for spec in (FeatureSpec.build(WindowPolicy.count(1000)), FeatureSpec.build(WindowPolicy.count(1000), version="1")):
        ws, X = lab_windows(order_only_table(), spec)
        assert len(ws) == 1
        text = behaviour_summary(X[0], spec.names)
        assert text.startswith("1,000 syscalls (no timestamps, so no rates); 3 threads made calls"), text
        assert "/s" not in text
        assert "per CPU-second" not in text
        assert "cores" not in text
        assert "top syscalls: futex 25%, getpid 25%, read 25%" in text
        why = "no resource samples" if spec.version == "2" else "not measured"
        assert f"CPU, memory and open sockets unknown ({why})" in text or f"I/O unknown ({why})" in text
    v2 = FeatureSpec.build(WindowPolicy.count(1000))
    _, X = lab_windows(order_only_table(), v2)
    text = behaviour_summary(X[0], v2.names)
    assert "0 socket I/O, 0 file I/O, 500 read/write calls on fds of unknown kind" in text


def test_per_process_window_of_a_mixed_pod() -> None:
    web = web_trace(seconds=4, per_s=500)
    miner = miner_trace(seconds=4)
    rows = [(r["ts_ns"], r) for r in web.table.to_pylist() + miner.table.to_pylist()]
    table = pa.Table.from_pylist([r for _, r in sorted(rows, key=lambda x: x[0])], schema=TRACE_SCHEMA)
    table = table.set_column(table.schema.get_field_index("pod_uid"), "pod_uid", pa.array(["u"] * table.num_rows))
    nginx = Proc(20, "nginx", 0.6, 5, 1, 64, FdCounts(socket_inet=200, file=30))
    samples = _samples([nginx, MINER], 4)
    spec = FeatureSpec.build(WindowPolicy(kind="time", seconds=2.0, per_process=True))
    trace = Trace(table, TraceMeta(source="test"), [StreamSample(pod_uid="u", sample=s) for s in samples])
    ws = [w for w in windows_from_trace(trace, spec.window) if w.complete and w.start_ns == T0 + 2 * S]
    X = vectorize_many(ws, spec)
    pod, first, second = ws[0], ws[1], ws[2]
    assert pod.pid is None
    assert (first.pid, first.comm, second.comm) == (10, "xmrig", "nginx")
    ref = ProcessRef(pid=10, comm=first.comm, exe=first.exe, cpu_cores=2.0)
    text = behaviour_summary(X[1], spec.names, process=ref, scope="process")
    assert text.startswith(
        "Process xmrig (pid 10, /usr/bin/xmrig, 2.0 cores): 2.0 cores busy while making 20 syscalls/s"
    )
    assert "3 threads (2 runnable)" in text
    whole = behaviour_summary(X[0], spec.names)
    assert whole.startswith("2.6 cores busy while making 520 syscalls/s"), whole
    assert "8 threads (3 runnable) in 2 processes" in whole


def test_summary_of_a_vector_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="feature names"):
        behaviour_summary(np.zeros(5), V2.names)


# ---- the wording of every feature -----------------------------------------------------------------


@pytest.mark.parametrize("spec", [V1, V2, FeatureSpec.default()], ids=["v1", "v2", "default"])
def test_every_feature_name_has_its_own_words(spec: FeatureSpec) -> None:
    words = FeatureWording(spec)
    for name in spec.names:
        w = words.wording(name)
        assert w.label != name, name
        assert not w.sentence.startswith(f"{name} ="), name
        text = words.sentence(name, 0.5, 0.0, 0.1, 0.2)
        assert text
        assert not BARE_BUCKET.search(text), text


@pytest.mark.parametrize(
    ("name", "value", "p05", "p95", "text"),
    [
        ("freq.sched_yield", 0.41, 0.0, 0.0, "sched_yield is 41% of calls (benign pods: 0%)"),
        ("freq_nocheap.futex", 0.8, 0.0, 0.004, "futex is 80% of non-trivial calls (benign pods: < 1%)"),
        ("freq.read", 0.2, 0.05, 0.3, "read is 20% of calls (benign pods: 5-30%)"),
        ("freq.poll", 0.004, 0.0, 0.0, "poll is 0.4% of calls (benign pods: 0%)"),
        (
            "cheap_share",
            0.7,
            0.0,
            0.1,
            "trivial calls (getpid, clock_gettime, sleeps, ...) are 70% of calls (benign pods: 0-10%)",
        ),
        ("stat.log_count", math.log10(1001), 1.0, 2.0, "1,000 syscalls in the window (benign pods: 9-99)"),
        (
            "stat.entropy",
            0.3,
            2.6,
            3.9,
            "syscall entropy is 0.30 bits (low = repetitive) (benign pods: 2.60-3.90 bits)",
        ),
        (
            "thread.dominated",
            4.0,
            0.0,
            0.0,
            "4 threads spend > 80% of their non-trivial calls in one syscall (benign pods: 0)",
        ),
        ("rate.syscalls_per_s", 12.0, 500.0, 20000.0, "12 syscalls/s (benign pods: 500-20,000 syscalls/s)"),
        ("rate.sched_yield", 3913.0, 0.0, 0.0, "sched_yield at 3,913 calls/s (benign pods: 0 calls/s)"),
        ("rate.epoll_wait", 1234.0, None, None, "epoll_wait/epoll_pwait/epoll_pwait2 at 1,234 calls/s"),
        (
            "iat.median_us",
            80000.0,
            5.0,
            900.0,
            "the median gap between syscalls is 80,000 µs (benign pods: 5-900 µs)",
        ),
        ("rate.sched_yield", float("nan"), 0.0, 0.0, "sched_yield calls per second: unknown (benign pods: 0 calls/s)"),
        ("time.has_time", 1.0, 1.0, 1.0, "timestamps known: yes"),
        ("res.cpu_cores", 2.0, 0.0, 0.8, "2.0 cores busy (benign pods: 0-0.8 cores)"),
        ("res.throttled_cores", 0.25, 0.0, 0.0, "throttled by the CPU quota for 0.25 cores (benign pods: 0 cores)"),
        ("res.running", 2.0, 0.0, 1.0, "2 threads runnable on average (benign pods: 0-1)"),
        ("res.running_share", 0.67, 0.0, 0.2, "67% of threads runnable on average (benign pods: 0-20%)"),
        (
            "res.log_syscalls_per_cpu_s",
            math.log10(11),
            math.log10(301),
            math.log10(9001),
            "10 syscalls per CPU-second (benign pods: 300-9,000 syscalls per CPU-second)",
        ),
        ("res.log_memory_mb", math.log10(257), 1.0, 2.0, "256 MB of memory (benign pods: 9-99 MB)"),
        ("res.log_hugetlb_mb", math.log10(2049), 0.0, 0.0, "2.0 GB in huge pages (benign pods: 0 MB)"),
        ("res.sockets_inet", 1.0, 2.0, 200.0, "1 TCP/UDP sockets open (benign pods: 2-200)"),
        ("res.has", 0.0, 1.0, 1.0, "resource samples known: no"),
        ("io.file_share", 0.0, 0.1, 0.5, "file I/O is 0% of non-trivial calls (benign pods: 10-50%)"),
        ("io.inet_per_s", 0.5, 10.0, 3000.0, "0.5 TCP/UDP I/O calls/s (benign pods: 10-3,000 TCP/UDP I/O calls/s)"),
        ("io.has_fd_kind", 1.0, 0.0, 1.0, "fd kinds of I/O calls known: yes"),
    ],
)
def test_sentences(name: str, value: float, p05: float | None, p95: float | None, text: str) -> None:
    assert FeatureWording().sentence(name, value, p05, None, p95) == text


def test_numbers_and_shares() -> None:
    assert [num(v) for v in (12345.6, 21.4, 2.46, 0.25, 0.0004, 9.999, 0.0)] == [
        "12,346", "21", "2.5", "0.25", "< 0.001", "10", "0",
    ]  # fmt: skip
    assert [share(v) for v in (0.41, 0.025, 0.05, 0.004, 0.0002, 0.0, 1.0)] == [
        "41%", "2.5%", "5%", "0.4%", "< 0.1%", "0%", "100%",
    ]  # fmt: skip
    assert FeatureWording().benign_range("freq.read", 0.0, None, 0.005) == "benign pods: < 1%"
    assert FeatureWording().benign_range("freq.read", float("nan"), None, 0.3) == ""
    assert FeatureWording().benign_range("time.has_time", 0.0, None, 1.0) == ""


def test_ngram_bucket_is_named_by_the_windows_own_syscalls() -> None:
    poll, recv, write = index_of("poll"), index_of("recvfrom"), index_of("write")
    ids = np.array([poll, recv] * 20 + [write, write], dtype=np.int16)
    bucket = int(ngram_buckets(ids[:2].astype(np.int64), 2, 128)[0])
    words = FeatureWording(V2)
    text = words.sentence(f"ngram2_nc.{bucket}", 0.5, 0.0, None, 0.02, WindowIds(ids, V2))
    assert text.startswith("syscall pairs like poll→recvfrom"), text
    assert text.endswith("are 50% of consecutive non-trivial syscall pairs (benign pods: 0-2%)")
    assert words.label(f"ngram2_nc.{bucket}", WindowIds(ids, V2)).startswith("pairs like poll→recvfrom (hash bucket")
    bare = words.sentence(f"ngram2_nc.{bucket}", 0.5)
    assert not BARE_BUCKET.search(bare)
    assert "hashed group of syscall pairs" in bare


def test_ngram_bucket_is_guessed_from_the_vector_without_ids() -> None:
    """The scorer's sequence may not hold the pair (only the last 512 non-cheap calls): the window's
    syscall mix (its freq.* values) names the likely pairs instead, and says it is a guess."""
    ws, X = lab_windows(web_trace(seconds=4, per_s=2000))
    pair = np.array([index_of("recvfrom"), index_of("openat")], dtype=np.int64)
    bucket = int(ngram_buckets(pair, 2, V2.params.buckets)[0])
    ctx = WindowIds(None, V2, vector=X[0])
    members, exact = ctx.ngram_members("ngram2_nc", bucket)
    assert not exact
    assert "recvfrom→openat" in members
    text = FeatureWording(V2).sentence(f"ngram2_nc.{bucket}", 0.14, context=ctx)
    assert "recvfrom→openat" in text
    assert "(guessed from the window's syscall mix)" in text
    exact_ctx = WindowIds(ws[0].ids, V2)
    members, exact = exact_ctx.ngram_members("ngram2_nc", bucket)
    assert exact
    assert members == ["recvfrom→openat"]


def test_top_syscall_from_ids_or_vector() -> None:
    ws, X = lab_windows(miner_trace())
    words = FeatureWording(V2)
    assert "(futex)" in words.sentence("stat.top_share_nc", 0.97, context=WindowIds(ws[1].ids, V2))
    assert "(futex)" in words.sentence("stat.top_share_nc", 0.97, context=WindowIds(None, V2, vector=X[1]))


def test_hostile_vectors_and_ids_never_break_the_wording() -> None:
    rng = np.random.default_rng(7)
    describer = WindowDescriber(V2.names, V2, {"rate.syscalls_per_s": (1.0, 10.0)})
    words = FeatureWording(V2)
    specials = np.array([np.nan, np.inf, -np.inf, -1.0, 0.0, 1e300, -1e300, 1e-300, 3.0])
    for _ in range(60):
        x = rng.choice(specials, V2.dim)
        ids = rng.integers(-(1 << 20), 1 << 20, int(rng.integers(0, 50)))
        assert describer.summary(x, ids=ids).endswith(".")
        ctx = WindowIds(ids, V2, vector=x)
        for j in rng.choice(V2.dim, 20):
            name = V2.names[int(j)]
            assert words.sentence(name, float(x[j]), float(x[(j + 1) % V2.dim]), None, 1.0, ctx)
            assert words.label(name, ctx)
    assert WindowIds(np.array([np.nan, 3.7, -1, 1e300]), V2).full.tolist() == [3]
    assert WindowIds(["read", None], V2).full.tolist() == []
