"""Replay recorded traces as live pods: trace rows -> the messages a collector would have sent.

What a collector would have sent for the same syscalls: one stream per (pod, container), batches cut
at ``max_events`` or ``max_age_s`` of event time, ``seq`` contiguous per stream, syscall numbers in the
trace's architecture, the ``fd_kind`` tags when the trace has them. Timestamps keep their spacing and
can be shifted so the replay starts now (``start_ns``), which is what a streaming consumer's
event-time windows expect. The trace's resource samples (``Trace.resources``) become
``ResourceSample`` messages of their stream, shifted the same way and placed as a live collector sends
them: a sample taken at time t goes before the stream's first batch holding an event after t.

``publish`` sends through the collector's own spool and publisher: when the broker goes away the
replay waits, retries and resends (at least once, in order per stream); it gives up, with a clear
error and the count of unsent messages, only after ``give_up_after_s`` without any progress.
Used by ``minerlens collector replay``, the end-to-end tests and the featurizer benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from minerlens_core import topics
from minerlens_core.errors import MinerlensError, TraceFormatError
from minerlens_core.kafka import message_headers
from minerlens_core.schemas import Envelope, FdKind, PodRef, ResourceSample, SyscallBatch, TaskInfo
from minerlens_core.settings import KafkaSettings
from minerlens_core.syscalls import Arch, parse_arch, syscall_number
from minerlens_core.traces import Trace
from pydantic import ValidationError

from minerlens_collector.agent.publisher import Publisher
from minerlens_collector.agent.spool import Outgoing, Spool
from minerlens_collector.events import NR_MAX, UNKNOWN_NR
from minerlens_collector.procfs import INT64_MAX, printable

log = logging.getLogger(__name__)
Message = SyscallBatch | ResourceSample


class ReplayAborted(MinerlensError):
    """The broker stayed unreachable (no message acknowledged) for longer than the replay may wait."""

    def __init__(self, message: str, sent: int, unsent: int) -> None:
        super().__init__(message)
        self.sent, self.unsent = sent, unsent


@dataclass(frozen=True)
class ReplayPod:
    """Who a replayed stream claims to be (defaults: the trace's own pod columns)."""

    uid: str
    namespace: str
    name: str
    labels: tuple[tuple[str, str], ...] = ()


def _numbers(t: pa.Table, arch: Arch) -> npt.NDArray[np.int64]:
    """The trace's ``nr`` column where present, else the name looked up in ``arch``'s table."""
    names = pc.dictionary_encode(t.column("syscall")).combine_chunks()
    lut = np.array(
        [n if (n := syscall_number(str(s), arch)) is not None else UNKNOWN_NR for s in names.dictionary.to_pylist()]
        + [UNKNOWN_NR],
        dtype=np.int64,
    )
    by_name = lut[names.indices.fill_null(len(lut) - 1).to_numpy(zero_copy_only=False)]
    nr = pc.fill_null(t.column("nr"), -1).to_numpy().astype(np.int64)
    out: npt.NDArray[np.int64] = np.where((nr >= 0) & (nr <= NR_MAX), nr, by_name)
    return out


def _fd_kinds(t: pa.Table) -> npt.NDArray[np.int8] | None:
    """The ``fd_kind`` column (nulls and codes out of range as 0), ``None`` when the trace has no tags."""
    col = t.column("fd_kind") if "fd_kind" in t.schema.names else None
    if col is None or col.null_count == t.num_rows:
        return None
    k = pc.fill_null(col, 0).to_numpy().astype(np.int64)
    out: npt.NDArray[np.int8] = np.where((k >= 0) & (k <= max(FdKind)), k, 0).astype(np.int8)
    return out


def _streams(t: pa.Table) -> Iterator[tuple[tuple[str, str], npt.NDArray[np.int64]]]:
    """Row indices of each (pod, container) stream, in first-seen order, rows in trace order."""
    pods = t.column("pod_uid").to_pylist()
    ctrs = t.column("container_id").to_pylist()
    order: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(pods, ctrs, strict=True)):
        order.setdefault(key, []).append(i)
    for key, rows in order.items():
        yield key, np.asarray(rows, dtype=np.int64)


def _timestamps(trace: Trace) -> npt.NDArray[np.int64] | None:
    t = trace.table
    if t.num_rows == 0 or t.column("ts_ns").null_count:
        return None
    out: npt.NDArray[np.int64] = t.column("ts_ns").to_numpy().astype(np.int64)
    return out


def time_shift(trace: Trace, start_ns: int | None) -> int:
    """ns to add to the trace's times so its first syscall (or sample) happens at ``start_ns``; checks that
    every shifted time stays a valid Unix-epoch ns (``TraceFormatError`` otherwise)."""
    ts = _timestamps(trace)
    times = [int(ts.min()), int(ts.max())] if ts is not None else []
    times += [s.sample.ts_ns for s in trace.resources]
    if not times:
        return 0
    shift = 0 if start_ns is None else start_ns - (int(ts.min()) if ts is not None else min(times))
    if min(times) + shift < 0 or max(times) + shift > INT64_MAX:
        msg = "trace times out of range (negative or beyond int64 once shifted): cannot be replayed"
        raise TraceFormatError(msg)
    return shift


def _pod_ref(who: ReplayPod) -> PodRef:
    try:
        return PodRef(uid=who.uid, namespace=who.namespace, name=who.name, labels=dict(who.labels))
    except ValidationError as exc:
        msg = f"pod identity {who.uid!r} {who.namespace!r}/{who.name!r} is not valid: {_first_error(exc)}"
        raise TraceFormatError(msg) from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    return f"{'.'.join(str(x) for x in err.get('loc', ()))}: {err.get('msg', '')}"[:300]


def batches_from_trace(
    trace: Trace,
    *,
    node: str,
    cluster: str = "default",
    pod: ReplayPod | None = None,
    max_events: int = 16_384,
    max_age_s: float = 1.0,
    start_ns: int | None = None,
) -> list[SyscallBatch]:
    """Every batch a collector would have sent for ``trace`` (all streams, each stream in order).

    ``start_ns``: shift timestamps so the earliest syscall of the trace happens at ``start_ns``.
    Order-only traces (no timestamps) give batches without ``dt_ns``, cut by ``max_events`` only.
    A trace whose values cannot travel in the contract raises ``TraceFormatError``.
    """
    return [
        b for stream in _batch_streams(trace, node, cluster, pod, max_events, max_age_s, start_ns) for b in stream[1]
    ]


def _batch_streams(
    trace: Trace,
    node: str,
    cluster: str,
    pod: ReplayPod | None,
    max_events: int,
    max_age_s: float,
    start_ns: int | None,
) -> list[tuple[tuple[str, str], list[SyscallBatch]]]:
    t = trace.table
    if t.num_rows == 0:
        return []
    arch = parse_arch(str(t.column("arch")[0].as_py() or trace.meta.arch or "x86_64"))
    nr_all = _numbers(t, arch)
    kinds_all = _fd_kinds(t)
    ts_all = _timestamps(trace)
    shift = time_shift(trace, start_ns)
    tid_all = np.clip(pc.fill_null(t.column("tid"), 0).to_numpy().astype(np.int64), 0, (1 << 31) - 1)
    pid_all = np.clip(pc.fill_null(t.column("pid"), 0).to_numpy().astype(np.int64), 0, (1 << 31) - 1)
    comm_all = t.column("comm").to_pylist()
    age_ns = int(max_age_s * 1e9)
    out: list[tuple[tuple[str, str], list[SyscallBatch]]] = []
    for (pod_uid, container_id), rows in _streams(t):
        r0 = int(rows[0])
        who = pod or ReplayPod(
            str(pod_uid or ""),
            str(t.column("namespace")[r0].as_py() or ""),
            str(t.column("pod_name")[r0].as_py() or ""),
        )
        env_pod = _pod_ref(who)
        sample_times = sorted(
            r.sample.ts_ns for r in trace.resources if (r.pod_uid, r.container_id) == (pod_uid, container_id)
        )
        cuts = _cuts(rows, None if ts_all is None else ts_all[rows], max_events, age_ns, sample_times)
        stream: list[SyscallBatch] = []
        for seq, (lo, hi) in enumerate(cuts):
            part = rows[lo:hi]
            tasks = {
                int(tid_all[i]): TaskInfo(
                    tid=int(tid_all[i]), pid=int(pid_all[i]), comm=printable(str(comm_all[i] or ""), 64)
                )
                for i in part
            }
            start = end = None
            dt: list[int] | None = None
            if ts_all is not None:
                ts = ts_all[part] + shift
                start, end = int(ts.min()), int(ts.max())
                dt = (ts - start).tolist()
            try:
                stream.append(
                    SyscallBatch(
                        envelope=Envelope(cluster=cluster, node=node, pod=env_pod, container_id=container_id or ""),
                        source="replay",
                        arch=arch,
                        seq=seq,
                        start_ns=start,
                        end_ns=end,
                        nr=nr_all[part].tolist(),
                        tid=tid_all[part].tolist(),
                        dt_ns=dt,
                        fd_kind=None if kinds_all is None else kinds_all[part].tolist(),
                        tasks=list(tasks.values()),
                    )
                )
            except ValidationError as exc:
                msg = f"stream {pod_uid!r}/{container_id!r} cannot be replayed: {_first_error(exc)}"
                raise TraceFormatError(msg) from None
        out.append(((str(pod_uid or ""), str(container_id or "")), stream))
    return out


def samples_from_trace(
    trace: Trace,
    *,
    node: str,
    cluster: str = "default",
    pod: ReplayPod | None = None,
    start_ns: int | None = None,
) -> list[tuple[tuple[str, str], ResourceSample]]:
    """The trace's resource samples as messages, each with its (pod uid, container id) stream, shifted
    like the syscalls (``time_shift``)."""
    if not trace.resources:
        return []
    shift = time_shift(trace, start_ns)
    names = _stream_names(trace)
    out: list[tuple[tuple[str, str], ResourceSample]] = []
    refs: dict[tuple[str, str], PodRef] = {}
    for s in trace.resources:
        key = (s.pod_uid, s.container_id)
        ref = refs.get(key)
        if ref is None:
            ns, name = names.get(s.pod_uid, ("", ""))
            ref = refs[key] = _pod_ref(pod or ReplayPod(s.pod_uid, ns, name))
        try:
            msg = ResourceSample(
                envelope=Envelope(cluster=cluster, node=node, pod=ref, container_id=s.container_id),
                source="replay",
                sample=s.sample.model_copy(update={"ts_ns": s.sample.ts_ns + shift}),
            )
        except ValidationError as exc:
            err = f"resource sample of {key!r} cannot be replayed: {_first_error(exc)}"
            raise TraceFormatError(err) from None
        out.append((key, msg))
    return out


def _stream_names(trace: Trace) -> dict[str, tuple[str, str]]:
    """pod uid -> (namespace, pod name) as the trace's rows give them."""
    t = trace.table
    if t.num_rows == 0:
        return {}
    rows = (
        t.select(["pod_uid", "namespace", "pod_name"])
        .group_by("pod_uid", use_threads=False)
        .aggregate([("namespace", "first"), ("pod_name", "first")])
    )
    return {
        str(r["pod_uid"] or ""): (str(r["namespace_first"] or ""), str(r["pod_name_first"] or ""))
        for r in rows.to_pylist()
    }


def messages_from_trace(
    trace: Trace,
    *,
    node: str,
    cluster: str = "default",
    pod: ReplayPod | None = None,
    max_events: int = 16_384,
    max_age_s: float = 1.0,
    start_ns: int | None = None,
) -> list[Message]:
    """Batches and resource samples of every stream of ``trace``, in the order a collector sends them.

    Per stream, a sample taken at t goes right before the first batch with an event after t (batches
    never change order); the streams are merged by time (``message_time``).
    """
    batches = dict(_batch_streams(trace, node, cluster, pod, max_events, max_age_s, start_ns))
    samples: dict[tuple[str, str], list[ResourceSample]] = {}
    for key, sample in samples_from_trace(trace, node=node, cluster=cluster, pod=pod, start_ns=start_ns):
        samples.setdefault(key, []).append(sample)
    streams: list[list[Message]] = []
    for key in list(batches) + [k for k in samples if k not in batches]:
        streams.append(_place(batches.get(key, []), sorted(samples.get(key, []), key=lambda m: m.sample.ts_ns)))
    return list(heapq.merge(*streams, key=message_time))


def _place(batches: list[SyscallBatch], samples: list[ResourceSample]) -> list[Message]:
    out: list[Message] = []
    i, latest = 0, -1  # latest: the running maximum of event times (a stream's times may step back)
    for b in batches:
        latest = max(latest, b.end_ns if b.end_ns is not None else -1)
        while i < len(samples) and b.end_ns is not None and latest > samples[i].sample.ts_ns:
            out.append(samples[i])
            i += 1
        out.append(b)
    out += samples[i:]
    return out


def message_time(m: Message) -> int:
    """Merge key across streams: a batch's first event, a sample's time (order-only batches: 0)."""
    if isinstance(m, ResourceSample):
        return m.sample.ts_ns
    return m.start_ns or 0


def _cuts(
    rows: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64] | None,
    max_events: int,
    age_ns: int,
    sample_times: Sequence[int] = (),
) -> list[tuple[int, int]]:
    """Batch boundaries: at most ``max_events`` and ``age_ns`` of event time each, and never across a resource
    sample's time (events up to it, by running maximum, before the sample; later ones after it), which is
    the order the feature library merges a trace's events and samples in (``features.windows.merged``)."""
    cuts: list[tuple[int, int]] = []
    lo, n = 0, len(rows)
    run_max = None if ts is None else np.maximum.accumulate(ts)
    bounds = [] if run_max is None else sorted({int(np.searchsorted(run_max, t, side="right")) for t in sample_times})
    b = 0
    while lo < n:
        hi = min(lo + max_events, n)
        if ts is not None:
            # the batch closes when it would span more than max_age of event time
            hi = min(hi, lo + int(np.searchsorted(ts[lo:hi], ts[lo] + age_ns, side="left")) or lo + 1)
            while b < len(bounds) and bounds[b] <= lo:
                b += 1
            if b < len(bounds):
                hi = min(hi, bounds[b])
        cuts.append((lo, hi))
        lo = hi
    return cuts


def interleave(streams: Sequence[list[SyscallBatch]]) -> list[SyscallBatch]:
    """Batches of several replayed traces merged by start time (as one node's collector would send them)."""
    merged = [b for s in streams for b in s]
    merged.sort(key=lambda b: (b.start_ns or 0, b.envelope.key, b.seq))
    return merged


def merge_messages(traces: Sequence[list[Message]]) -> list[Message]:
    """Messages of several replayed traces (each from ``messages_from_trace``) merged by time; the order
    within each trace is kept."""
    return list(heapq.merge(*traces, key=message_time))


async def publish(
    messages: Sequence[Message],
    kafka: KafkaSettings,
    *,
    topic: str = topics.SYSCALLS,
    speed: float = 0.0,
    give_up_after_s: float = 300.0,
    window_bytes: int = 32 << 20,
    stall_after_s: float = 5.0,
) -> int:
    """Send ``messages`` in order, as the collector does (spool + publisher: retried until acknowledged).

    ``speed`` > 0 paces them by event time (1.0 = real time). At most ``window_bytes`` wait unacknowledged
    at once (the spool never evicts here: the replay waits for room instead). Returns how many messages
    were delivered (all of them; a resend after an outage is not counted twice); raises ``ReplayAborted``
    when no message was acknowledged for ``give_up_after_s``.
    """
    spool = Spool(max_bytes=1 << 62)
    publisher = Publisher(kafka, topic, spool, stall_after_s=stall_after_s, max_backoff_s=5.0)
    runner = asyncio.create_task(publisher.run(), name="replay-publisher")
    progress = _Progress(publisher, give_up_after_s)
    queued = 0
    try:
        t0 = time.monotonic()
        first = next((message_time(m) for m in messages if message_time(m) > 0), None)
        for m in messages:
            if speed > 0 and first is not None and message_time(m) > 0:
                due = (message_time(m) - first) / 1e9 / speed - (time.monotonic() - t0)
                if due > 0:
                    await asyncio.sleep(due)
            while spool.bytes >= window_bytes:
                await progress.wait(spool, runner)
            events = len(m) if isinstance(m, SyscallBatch) else 0
            pod = m.envelope.pod.uid if m.envelope.pod else None
            spool.put(Outgoing(m.envelope.key, m.model_dump_json().encode(), message_headers(m), events, pod, m.kind))
            queued += 1
        while len(spool):
            await progress.wait(spool, runner)
    except ReplayAborted as exc:
        sent = queued - len(spool)
        msg = f"{exc}; {len(messages) - sent} of {len(messages)} messages unsent"
        raise ReplayAborted(msg, sent, len(messages) - sent) from None
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await publisher.close()
    return len(messages)


class _Progress:
    """Waits for the publisher to acknowledge something; gives up after ``limit_s`` without progress."""

    def __init__(self, publisher: Publisher, limit_s: float) -> None:
        self._publisher = publisher
        self._limit = limit_s
        self._sent = -1
        self._since = time.monotonic()

    async def wait(self, spool: Spool, runner: asyncio.Task[None]) -> None:
        await asyncio.sleep(0.02)
        sent = self._publisher.sent_messages
        now = time.monotonic()
        if sent != self._sent:
            self._sent, self._since = sent, now
            return
        if runner.done():  # the publisher never ends by itself: whatever ended it is reported
            exc = runner.exception()
            msg = f"the Kafka publisher stopped: {exc!r}"
            raise ReplayAborted(msg, 0, len(spool))
        if now - self._since > self._limit:
            msg = f"Kafka acknowledged nothing for {self._limit:.0f} s, giving up"
            raise ReplayAborted(msg, 0, len(spool))
