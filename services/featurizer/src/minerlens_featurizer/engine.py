"""The featurizer's logic, free of Kafka and Faust: syscall batches in, closed windows out.

Per partition and node one core ``WindowBuilder`` holds the streams (pod, container) of that node
whose messages arrive on that partition, so a watermark tick for a partition touches exactly the
streams whose state lives in that partition's changelog. For every input message the engine

1. decodes and checks it (``validation``): unusable messages become dead letters;
2. drops resent batches (``seq`` already seen), counts ``seq`` gaps and ``lost_before`` as loss;
3. feeds the batch to the stream's builder (``chunk_from_batch`` + ``WindowBuilder.add``, the code
   training uses) and queues the windows that closed, with the envelope data they will carry;
4. records the new buffered events as state segments and marks the stream dirty.

Nothing is written to the state store here: ``take()`` hands the transport the windows plus the
state writes, and the transport persists the writes only after the windows were delivered. State
is therefore never ahead of the output: after a crash the same batches are replayed into the same
state and give the same windows (same ids, same bytes), which the scorer deduplicates.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from minerlens_core.features import StreamChunk, StreamKey, Window, WindowBuilder
from minerlens_core.features.windows import Cols
from minerlens_core.schemas import DropReport, PodRef, ResourceSample, SyscallBatch
from minerlens_core.schemas.bounds import INT64_MAX
from minerlens_core.schemas.envelope import NODE_POD_UID

from minerlens_featurizer.control import NodeLoss, Tick, decode_control, encode_control
from minerlens_featurizer.metrics import FeaturizerMetrics
from minerlens_featurizer.outbox import ControlOut, DeadLetter, Outbox, PendingWindow, WindowMeta
from minerlens_featurizer.settings import FeaturizerSettings
from minerlens_featurizer.spec import ServedSpec
from minerlens_featurizer.state import (
    HEADER_PREFIX,
    POD_LOSS_PREFIX,
    SEGMENT_PREFIX,
    LiveStream,
    Segment,
    StreamHeader,
    decode_segment,
    encode_segment,
    header_key,
    keep_state,
    live_segments,
    load_header,
    offset_key,
    pod_loss_key,
    segment_key,
    window_state,
)
from minerlens_featurizer.validation import Limits, Rejection, check_sample, decode, to_chunk

log = logging.getLogger(__name__)

_RECENT_DROPS = 4096
INPUT, CONTROL = b"in", b"ctl"


class StateReader(Protocol):
    """Read access to the state table (the Faust table, or a dict in tests)."""

    def get(self, key: bytes) -> bytes | None: ...

    def items(self) -> Iterable[tuple[bytes, bytes]]: ...


@dataclass(frozen=True)
class Timing:
    grace_ns: int
    idle_timeout_s: float
    retired_ttl_s: float
    segment_max_events: int

    @classmethod
    def from_settings(cls, s: FeaturizerSettings) -> Timing:
        return cls(round(s.watermark_grace_s * 1e9), s.idle_timeout_s, s.retired_ttl_s, s.segment_max_events)

    @property
    def idle_timeout_ns(self) -> int:
        return round(self.idle_timeout_s * 1e9)


def _ns(batch: SyscallBatch) -> int:
    at = batch.envelope.observed_at
    return int(at.timestamp()) * 10**9 + at.microsecond * 1000


def _seq_at(marks: list[tuple[int, int]], row: int) -> int | None:
    if not marks:
        return None
    i = bisect.bisect_right([m[0] for m in marks], row) - 1
    return marks[max(i, 0)][1]


class Featurizer:
    """Windows per (pod, container) stream, with state that can be persisted and restored exactly."""

    def __init__(
        self,
        served: ServedSpec,
        settings: FeaturizerSettings,
        store: StateReader,
        metrics: FeaturizerMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.served = served
        self.spec = served.spec
        self.policy = served.spec.window
        self.timing = Timing.from_settings(settings)
        self.limits = Limits.from_settings(settings, needs_time=self.policy.kind == "time")
        self.store = store
        self.metrics = metrics or FeaturizerMetrics()
        self.clock = clock
        self._builders: dict[tuple[int, str], WindowBuilder] = {}
        self._streams: dict[StreamKey, LiveStream] = {}
        self._by_partition: dict[int, dict[StreamKey, LiveStream]] = {}
        self._retired: dict[StreamKey, LiveStream] = {}
        self._pod_loss: dict[str, tuple[int, int]] = {}  # pod uid -> (partition, lost events)
        self._loaded: dict[int, float] = {}  # partition -> wall time its state was loaded
        self._local_marks: dict[tuple[int, str], int] = {}
        self._node_marks: dict[str, int] = {}
        self._dirty: set[StreamKey] = set()
        self._pod_dirty: set[str] = set()
        self._recent_drops: OrderedDict[bytes, None] = OrderedDict()
        self._applied: dict[tuple[bytes, int], int] = {}  # (topic kind, partition) -> last applied offset
        self._touched: set[tuple[bytes, int]] = set()
        self._outbox = Outbox()

    # --- transport-facing API -----------------------------------------------------------------------

    def on_input(self, raw: bytes | None, key: bytes | None, partition: int, offset: int, topic: str) -> None:
        """One message of the syscall topic. Never raises: failures become dead letters.

        A message at or below the partition's persisted offset was already applied to the stored
        state (Kafka redelivers from the last committed offset, which can lag the state): skipped.
        """
        try:
            self.load_partition(partition)
            if not self._first_time(INPUT, partition, offset):
                return
            msg = decode(raw)
            if isinstance(msg, Rejection):
                self._dead(msg, raw, key, topic, partition, offset)
            elif isinstance(msg, DropReport):
                self.metrics.messages.labels("drop_report").inc()
                self._on_drop(msg, partition, raw or b"", f"{topic}/{partition}/{offset}")
            elif isinstance(msg, ResourceSample):
                self.metrics.messages.labels("resource_sample").inc()
                why = check_sample(msg, self.limits)
                if why is not None:
                    self._dead(why, raw, key, topic, partition, offset)
                else:
                    self._on_sample(msg, partition)
            else:
                self.metrics.messages.labels("syscall_batch").inc()
                self._on_batch(msg, partition, raw, key, topic, offset)
        except Exception as exc:
            log.exception("featurizer failed on %s/%d@%d; dead-lettered", topic, partition, offset)
            self.metrics.internal_errors.inc()
            self._dead(Rejection("internal_error", exc), raw, key, topic, partition, offset)

    def on_control(self, raw: bytes | None, partition: int, offset: int = -1, caught_up: bool = True) -> None:
        """One message of the control topic (tick or fanned-out node loss). Never raises."""
        try:
            self.load_partition(partition)
            if offset >= 0 and not self._first_time(CONTROL, partition, offset):
                return
            msg = decode_control(raw or b"")
            if isinstance(msg, Tick):
                self.metrics.messages.labels("tick").inc()
                self._on_tick(partition, msg, caught_up)
            else:
                self.metrics.messages.labels("node_loss").inc()
                self._on_node_loss(partition, msg)
        except Exception:
            log.exception("featurizer failed on a control message of partition %d (skipped)", partition)
            self.metrics.internal_errors.inc()

    def next_offset(self, kind: bytes, partition: int) -> int | None:
        """The next offset of the input (``INPUT``) or control (``CONTROL``) partition to apply; None: none yet."""
        self.load_partition(partition)
        applied = self._applied.get((kind, partition))
        return None if applied is None else applied + 1

    def _first_time(self, kind: bytes, partition: int, offset: int) -> bool:
        applied = self._applied.get((kind, partition), -1)
        if offset <= applied:
            self.metrics.replayed.inc()
            return False
        if kind == INPUT and (kind, partition) in self._applied and offset > applied + 1:
            # the syscall topic is neither compacted nor transactional: its offsets are contiguous
            skipped = offset - applied - 1
            log.warning("input partition %d: offsets %d..%d were never delivered", partition, applied + 1, offset - 1)
            self.metrics.offset_gaps.inc(skipped)
        self._applied[(kind, partition)] = offset
        self._touched.add((kind, partition))
        return True

    def tick(self, wall: float | None = None) -> Tick:
        """The tick this worker broadcasts: its wall clock and the latest batch end per node."""
        return Tick(wall=self.clock() if wall is None else wall, marks=dict(self._node_marks))

    def take(self) -> Outbox:
        """Everything produced since the last call: windows, dead letters, control, state writes."""
        box, self._outbox = self._outbox, Outbox()
        for key in self._dirty:
            st = self._streams.get(key) or self._retired.get(key)
            if st is None:
                continue
            w = box.writes_for(st.header.partition)
            segs = {s.no: s for s in st.segments}
            for no, arrays in st.unsaved.items():
                w.set(segment_key(key, no), encode_segment(segs[no], arrays))
            st.unsaved.clear()
            w.set(header_key(key), st.to_bytes())
            for no in st.dead:
                w.delete(segment_key(key, no))
            st.dead.clear()
        self._dirty.clear()
        for uid in self._pod_dirty:
            pending = self._pod_loss.get(uid)
            if pending is not None:
                body = {"partition": pending[0], "lost": pending[1], "wall": self.clock()}
                box.writes_for(pending[0]).set(pod_loss_key(uid), json.dumps(body).encode())
        self._pod_dirty.clear()
        for kind, p in self._touched:  # last: the offset never covers state that is not written before it
            box.writes_for(p).set(offset_key(kind, p), str(self._applied[(kind, p)]).encode())
        self._touched.clear()
        self.metrics.streams.set(len(self._streams))
        return box

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Partitions revoked: drop their in-memory state (the new owner restores it from the table)."""
        for p in set(partitions):
            self._loaded.pop(p, None)
            for key in list(self._by_partition.pop(p, {})):
                self._streams.pop(key, None)
                self._dirty.discard(key)
            for key in [k for k, st in self._retired.items() if st.header.partition == p]:
                del self._retired[key]
            for uid in [u for u, (pp, _) in self._pod_loss.items() if pp == p]:
                del self._pod_loss[uid]
            for bk in [bk for bk in self._builders if bk[0] == p]:
                del self._builders[bk]
            for mk in [mk for mk in self._local_marks if mk[0] == p]:
                del self._local_marks[mk]
            for kind in (INPUT, CONTROL):
                self._applied.pop((kind, p), None)
                self._touched.discard((kind, p))
        self.metrics.streams.set(len(self._streams))

    @property
    def streams(self) -> dict[StreamKey, LiveStream]:
        return self._streams

    def pending(self) -> int:
        return len(self._outbox.windows) + len(self._outbox.dead_letters) + len(self._outbox.control)

    # --- restore ------------------------------------------------------------------------------------

    def load_partition(self, partition: int) -> None:
        """Restore the streams whose state lives in ``partition`` (once, on its first message)."""
        if partition in self._loaded:
            return
        self._loaded[partition] = self.clock()
        segments: dict[StreamKey, set[int]] = {}
        headers: list[tuple[bytes, bytes]] = []
        for k, raw in self.store.items():
            if k.startswith(HEADER_PREFIX):
                headers.append((k, raw))
            elif k.startswith(SEGMENT_PREFIX):
                body, _, no = k[len(SEGMENT_PREFIX) :].rpartition(b"|")
                pod, _, ctr = body.partition(b"|")
                segments.setdefault((pod.decode(), ctr.decode()), set()).add(int(no))
            elif k.startswith(POD_LOSS_PREFIX):
                self._load_pod_loss(partition, k, raw)
        for kind in (INPUT, CONTROL):
            stored = self.store.get(offset_key(kind, partition))
            if stored is not None:
                self._applied[(kind, partition)] = max(self._applied.get((kind, partition), -1), int(stored))
        for k, raw in headers:
            try:
                header = load_header(raw)
            except ValueError:
                log.warning("unreadable state header %r: discarded", k)
                self.metrics.discarded.inc()
                continue
            if header.partition != partition:
                continue
            self._restore(partition, header, segments.get(header.key, set()))

    def _load_pod_loss(self, partition: int, k: bytes, raw: bytes) -> None:
        body = json.loads(raw)
        if int(body["partition"]) == partition:
            self._pod_loss[k[len(POD_LOSS_PREFIX) :].decode()] = (partition, int(body["lost"]))

    def _restore(self, p: int, header: StreamHeader, stored_segments: set[int]) -> None:
        key = header.key
        st = LiveStream(header, segments=live_segments(header))
        w = self._outbox.writes_for(p)
        for orphan in stored_segments - {s.no for s in st.segments}:
            w.delete(segment_key(key, orphan))  # written by a checkpoint that did not complete
        if header.spec != self.spec.digest:
            log.warning("state of %s was built for feature spec %s: discarded", key, header.spec[:16])
            self.metrics.discarded.inc()
            self._discard(p, st)
            return
        if header.retired is not None:
            self._retired[key] = st
            return
        try:
            tail = self._read_tail(st)
            self._builder(p, header.node).restore(self._head(header), window_state(header), tail)
        except (ValueError, KeyError) as exc:
            log.warning("state of %s is corrupt (%s): discarded", key, exc)
            self.metrics.discarded.inc()
            self._discard(p, st)
            return
        self._attach(st)
        mk = (p, header.node)
        self._local_marks[mk] = max(self._local_marks.get(mk, -1), header.last_end_ns)
        self._node_marks[header.node] = max(self._node_marks.get(header.node, -1), header.last_end_ns)
        self.metrics.restored.inc()

    def _read_tail(self, st: LiveStream) -> Cols | None:
        if not st.segments:
            return None
        parts = []
        for seg in st.segments:
            raw = self.store.get(segment_key(st.key, seg.no))
            if raw is None:
                msg = f"segment {seg.no} missing"
                raise KeyError(msg)
            start, _seq, cols = decode_segment(raw)
            if start != seg.start or len(cols) != seg.n:
                msg = f"segment {seg.no} holds [{start}, +{len(cols)}), header says [{seg.start}, +{seg.n})"
                raise ValueError(msg)
            parts.append(cols)
        lo = st.header.core["base"] - st.segments[0].start
        hi = st.header.core["seen"] - st.segments[0].start
        events = Cols.concat(parts)
        if lo < 0 or hi != len(events):
            msg = f"segments cover [{st.segments[0].start}, +{len(events)}), stream buffers [{lo}, {hi})"
            raise ValueError(msg)
        return events.slice(lo, hi)

    def _discard(self, p: int, st: LiveStream) -> None:
        w = self._outbox.writes_for(p)
        w.delete(header_key(st.key))
        for seg in st.segments:
            w.delete(segment_key(st.key, seg.no))

    # --- streams ------------------------------------------------------------------------------------

    def _builder(self, p: int, node: str) -> WindowBuilder:
        b = self._builders.get((p, node))
        if b is None:
            b = self._builders[(p, node)] = WindowBuilder(self.policy)
        return b

    @staticmethod
    def _head(h: StreamHeader) -> StreamChunk:
        empty = np.zeros(0, np.int16), np.zeros(0, np.int32)
        return StreamChunk(h.pod.uid, h.container_id, *empty, namespace=h.pod.namespace, pod_name=h.pod.name)

    def _attach(self, st: LiveStream) -> None:
        self._streams[st.key] = st
        self._by_partition.setdefault(st.header.partition, {})[st.key] = st

    def _detach(self, st: LiveStream) -> None:
        self._streams.pop(st.key, None)
        self._by_partition.get(st.header.partition, {}).pop(st.key, None)

    def _stream_for(self, key: StreamKey, p: int, b: SyscallBatch | ResourceSample) -> LiveStream:
        st = self._streams.get(key)
        node = b.envelope.node
        if st is None:
            st = self._retired.pop(key, None)
            if st is not None:  # an idle stream came back: numbering continues where it stopped
                st.header.retired = None
                builder = self._builder(st.header.partition, st.header.node)
                builder.restore(self._head(st.header), window_state(st.header), None)
            else:
                header = StreamHeader(
                    spec=self.spec.digest,
                    partition=p,
                    cluster=b.envelope.cluster,
                    node=node,
                    pod=b.envelope.pod or PodRef(uid=NODE_POD_UID),
                    container_id=key[1],
                )
                st = LiveStream(header)
            self._attach(st)
            self._take_pod_loss(st)
        h = st.header
        if h.partition != p or h.node != node:
            log.warning("stream %s moved from %d/%s to %d/%s (keyed by pod uid?)", key, h.partition, h.node, p, node)
            self._detach(st)
            self._builder(h.partition, h.node).hand_over(key, self._builder(p, node))
            if h.node != node:
                h.last_seq, h.last_end_ns = None, -1
            h.partition, h.node = p, node
            self._attach(st)
            self._dirty.add(key)  # persisted even if the message is then dropped (a resent batch or sample)
        return st

    def _take_pod_loss(self, st: LiveStream) -> None:
        pending = self._pod_loss.pop(st.header.pod.uid, None)
        if pending is not None:
            st.header.lost += pending[1]
            self._outbox.writes_for(pending[0]).delete(pod_loss_key(st.header.pod.uid))
            self._dirty.add(st.key)

    def _accept_seq(self, st: LiveStream, b: SyscallBatch) -> bool:
        """False for a resent batch; counts gaps as loss and notices collector restarts."""
        h = st.header
        if h.last_seq is None:
            return True
        if b.seq <= h.last_seq:
            if b.start_ns is None or h.last_end_ns < 0 or b.start_ns <= h.last_end_ns:
                self.metrics.duplicates.inc()
                return False
            self.metrics.seq_resets.inc()  # seq restarted with newer events: the collector restarted
            return True
        gap = b.seq - h.last_seq - 1
        if gap > 0:
            # each missing batch held at least one syscall: a lower bound, in events
            h.lost += gap
            self.metrics.seq_gaps.inc(gap)
            self.metrics.lost_events.labels("seq_gap").inc(gap)
        return True

    def _on_batch(self, b: SyscallBatch, p: int, raw: bytes | None, key: bytes | None, topic: str, offset: int) -> None:
        chunk = to_chunk(b, self.limits)
        if isinstance(chunk, Rejection):
            self._dead(chunk, raw, key, topic, p, offset)
            return
        skey = chunk.key
        st = self._stream_for(skey, p, b)
        if not self._accept_seq(st, b):
            return
        h = st.header
        builder = self._builder(p, h.node)
        before = builder.state(skey)
        seen_before = before.positions["seen"] if before is not None else 0
        marks = [*st.marks(), (seen_before, b.seq)]
        h.lost += b.lost_before
        windows = builder.add(chunk)
        after = builder.state(skey)
        assert after is not None
        cols = chunk.cols()
        n, ts, base = len(cols), cols.ts, after.positions["base"]
        step = self.timing.segment_max_events
        for lo in range(max(base - seen_before, 0), n, step):
            hi = min(n, lo + step)
            seg = Segment(h.seg_next, seen_before + lo, hi - lo, b.seq)
            h.seg_next += 1
            st.add_segment(seg, cols.slice(lo, hi))
        st.prune(base)
        keep_state(h, after)
        end = b.end_ns if b.end_ns is not None else (int(ts.max()) if chunk.ts_ns is not None else -1)
        h.last_seq = b.seq
        h.last_end_ns = max(h.last_end_ns, end)
        if chunk.ts_ns is not None:
            h.last_event_ns = max(h.last_event_ns, int(ts.max()))
        h.last_wall = self.clock()
        h.observed_ns = _ns(b)
        h.cluster = b.envelope.cluster
        if b.envelope.pod is not None:
            h.pod = b.envelope.pod
        if end >= 0:
            mk = (p, h.node)
            self._local_marks[mk] = max(self._local_marks.get(mk, -1), end)
            self._node_marks[h.node] = max(self._node_marks.get(h.node, -1), end)
        self._emit(st, windows, marks)
        self._dirty.add(skey)
        self.metrics.syscalls.inc(n)

    def _on_sample(self, msg: ResourceSample, p: int) -> None:
        """A resource sample of a stream: it joins the stream's state and may close a time slot."""
        pod = msg.envelope.pod
        key = (pod.uid if pod else NODE_POD_UID, msg.envelope.container_id)
        st = self._stream_for(key, p, msg)
        h = st.header
        t = msg.sample.ts_ns
        if t <= h.last_sample_ns:  # resent (at-least-once delivery) or out of order: already reflected
            self.metrics.duplicates.inc()
            return
        h.last_sample_ns = t
        builder = self._builder(p, h.node)
        marks = st.marks()
        windows = builder.add_sample(key, msg.sample, h.pod.namespace, h.pod.name)
        after = builder.state(key)
        assert after is not None
        st.prune(after.positions["base"])
        keep_state(h, after)
        h.last_event_ns = max(h.last_event_ns, t)
        h.last_wall = self.clock()
        if pod is not None:
            h.pod = pod
        mk = (p, h.node)
        self._local_marks[mk] = max(self._local_marks.get(mk, -1), t)
        self._node_marks[h.node] = max(self._node_marks.get(h.node, -1), t)
        self._emit(st, windows, marks)
        self._dirty.add(key)

    def _emit(self, st: LiveStream, windows: list[Window], marks: list[tuple[int, int]]) -> None:
        """Queue windows; a stream window takes the loss counted so far, its process windows report it too."""
        h = st.header
        lost = 0
        for w in windows:
            if w.pid is None:
                lost, h.lost = h.lost, 0
            meta = WindowMeta(
                cluster=h.cluster,
                node=h.node,
                pod=h.pod,
                container_id=h.container_id,
                lost_events=min(lost, INT64_MAX),  # saturated: forged reports can add up past the contract's bound
                first_seq=_seq_at(marks, w.first_row),
                observed_ns=w.end_ns if w.end_ns is not None else h.observed_ns,
            )
            self._outbox.windows.append(PendingWindow(w, meta))
            self.metrics.windows.labels(str(w.complete).lower()).inc()

    # --- drop reports -------------------------------------------------------------------------------

    def _on_drop(self, report: DropReport, p: int, raw: bytes, origin: str) -> None:
        digest = hashlib.sha256(raw).digest()
        if digest in self._recent_drops:  # the collector resent it
            self.metrics.duplicates.inc()
            return
        self._recent_drops[digest] = None
        if len(self._recent_drops) > _RECENT_DROPS:
            self._recent_drops.popitem(last=False)
        lost = report.lost_events
        self.metrics.lost_events.labels(report.reason).inc(lost)
        if lost == 0:
            return
        pod = report.envelope.pod
        if pod is None:  # node-wide: that node's streams live in every partition
            node_loss = NodeLoss(node=report.envelope.node, lost_events=lost, reason=report.reason, origin=origin)
            # this partition's streams take it now, in input order (through the control topic a tick could
            # retire a stream first); the other partitions get a copy through the control topic
            self._on_node_loss(p, node_loss)
            self._outbox.control.append(ControlOut(encode_control(node_loss), skip=p))
            return
        hit = [st for st in self._by_partition.get(p, {}).values() if st.header.pod.uid == pod.uid]
        for st in hit:
            st.header.lost += lost
            self._dirty.add(st.key)
        if not hit:  # no stream yet (or retired): the pod's next window carries it
            _, before = self._pod_loss.get(pod.uid, (p, 0))
            self._pod_loss[pod.uid] = (p, before + lost)
            self._pod_dirty.add(pod.uid)

    def _on_node_loss(self, p: int, msg: NodeLoss) -> None:
        for st in self._by_partition.get(p, {}).values():
            if st.header.node == msg.node:
                st.header.lost += msg.lost_events
                self._dirty.add(st.key)

    # --- ticks: watermarks, idle streams ------------------------------------------------------------

    def _on_tick(self, p: int, tick: Tick, caught_up: bool) -> None:
        for node, mark in tick.marks.items():
            self._node_marks[node] = max(self._node_marks.get(node, -1), mark)
        self._purge_retired(p, tick.wall)
        by_node: dict[str, list[LiveStream]] = {}
        for st in self._by_partition.get(p, {}).values():
            by_node.setdefault(st.header.node, []).append(st)
        loaded = self._loaded.get(p, tick.wall)
        idle_ns = self.timing.idle_timeout_ns
        for node, members in by_node.items():
            # other partitions' progress is only trusted once this partition has caught up: while it
            # replays a backlog its own streams are behind the node's latest batches
            mark = self._local_marks.get((p, node), -1)
            if caught_up:
                mark = max(mark, self._node_marks.get(node, -1))
            for st in members:
                h = st.header
                idle_wall = caught_up and tick.wall - max(h.last_wall, loaded) > self.timing.idle_timeout_s
                idle_event = h.last_event_ns >= 0 and mark - h.last_event_ns > idle_ns
                if idle_wall or idle_event:
                    self._retire(st, tick.wall)
            if mark >= 0 and self.policy.kind == "time":
                self._advance(p, node, mark - self.timing.grace_ns)

    def _advance(self, p: int, node: str, watermark_ns: int) -> None:
        builder = self._builders.get((p, node))
        if builder is None:
            return
        streams = [st for st in self._by_partition.get(p, {}).values() if st.header.node == node]
        marks = {st.key: st.marks() for st in streams}
        windows = builder.advance(watermark_ns)
        by_key: dict[StreamKey, list[Window]] = {}
        for w in windows:
            by_key.setdefault(w.key, []).append(w)
        for st in streams:
            state = builder.state(st.key)
            if state is None:
                continue
            if state.positions != st.header.core or len(state.samples) != len(st.header.samples):
                keep_state(st.header, state)
                st.prune(state.positions["base"])
                self._dirty.add(st.key)
            if st.key in by_key:
                self._emit(st, by_key[st.key], marks[st.key])

    def _retire(self, st: LiveStream, wall: float) -> None:
        """Flush an idle stream's trailing window and forget its events; keep its numbering."""
        h = st.header
        builder = self._builder(h.partition, h.node)
        state = builder.state(st.key) or window_state(h)
        marks = st.marks()
        windows = builder.flush(st.key)
        self._emit(st, windows, marks)
        keep_state(h, state.resumed(self.policy, trailing_emitted=bool(windows)))
        h.retired = wall
        st.drop_all_segments()
        self._detach(st)
        self._retired[st.key] = st
        self._dirty.add(st.key)
        self.metrics.retired.inc()

    def _purge_retired(self, p: int, wall: float) -> None:
        for key, st in list(self._retired.items()):
            if st.header.partition == p and wall - (st.header.retired or wall) > self.timing.retired_ttl_s:
                del self._retired[key]
                self._dirty.discard(key)
                self._outbox.writes_for(p).delete(header_key(key))

    # --- dead letters -------------------------------------------------------------------------------

    def _dead(self, why: Rejection, raw: bytes | None, key: bytes | None, topic: str, p: int, offset: int) -> None:
        self.metrics.dead_letters.labels(why.reason).inc()
        log.info("dead-letter %s/%d@%d: %s: %s", topic, p, offset, why.reason, why.detail[:300])
        self._outbox.dead_letters.append(DeadLetter(why.reason, why.error, key, raw or b"", topic, p, offset))
