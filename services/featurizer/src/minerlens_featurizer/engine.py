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

The engine's parts: ``streams`` (builders, live and retired streams), ``state`` (what is persisted),
``progress`` (applied offsets, watermarks) and ``losses`` (drop reports, pod losses waiting for a stream).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from minerlens_core.features import StreamKey, Window
from minerlens_core.schemas import DropReport, PodRef, ResourceSample, SyscallBatch
from minerlens_core.schemas.bounds import INT64_MAX
from minerlens_core.schemas.envelope import NODE_POD_UID

from minerlens_featurizer.control import Tick, decode_control
from minerlens_featurizer.losses import Losses
from minerlens_featurizer.metrics import FeaturizerMetrics
from minerlens_featurizer.outbox import DeadLetter, Outbox, PendingWindow, WindowMeta
from minerlens_featurizer.progress import CONTROL, INPUT, Offsets, Watermarks
from minerlens_featurizer.settings import FeaturizerSettings
from minerlens_featurizer.spec import ServedSpec
from minerlens_featurizer.state import (
    HEADER_PREFIX,
    POD_LOSS_PREFIX,
    SEGMENT_PREFIX,
    LiveStream,
    StateReader,
    StreamHeader,
    header_key,
    keep_state,
    live_segments,
    load_header,
    read_tail,
    segment_key,
    seq_at,
)
from minerlens_featurizer.streams import StreamRegistry
from minerlens_featurizer.validation import Limits, Rejection, check_sample, decode, to_chunk

log = logging.getLogger(__name__)

__all__ = ["CONTROL", "INPUT", "Featurizer", "StateReader", "Timing"]


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
        self.registry = StreamRegistry(self.policy)
        self.offsets = Offsets(self.metrics)
        self.marks = Watermarks()
        self.losses = Losses(self.registry, self.metrics, lambda: self.clock())
        self._loaded: dict[int, float] = {}  # partition -> wall time its state was loaded
        self._outbox = Outbox()

    # --- transport-facing API -----------------------------------------------------------------------

    def on_input(self, raw: bytes | None, key: bytes | None, partition: int, offset: int, topic: str) -> None:
        """One message of the syscall topic. Never raises: failures become dead letters.

        A message at or below the partition's persisted offset was already applied to the stored
        state (Kafka redelivers from the last committed offset, which can lag the state): skipped.
        """
        try:
            self.load_partition(partition)
            if not self.offsets.first_time(INPUT, partition, offset):
                return
            msg = decode(raw)
            if isinstance(msg, Rejection):
                self._dead(msg, raw, key, topic, partition, offset)
            elif isinstance(msg, DropReport):
                self.metrics.messages.labels("drop_report").inc()
                origin = f"{topic}/{partition}/{offset}"
                self.losses.on_drop(msg, partition, raw or b"", origin, self._outbox)
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
            if offset >= 0 and not self.offsets.first_time(CONTROL, partition, offset):
                return
            msg = decode_control(raw or b"")
            if isinstance(msg, Tick):
                self.metrics.messages.labels("tick").inc()
                self._on_tick(partition, msg, caught_up)
            else:
                self.metrics.messages.labels("node_loss").inc()
                self.losses.on_node_loss(partition, msg)
        except Exception:
            log.exception("featurizer failed on a control message of partition %d (skipped)", partition)
            self.metrics.internal_errors.inc()

    def next_offset(self, kind: bytes, partition: int) -> int | None:
        """The next offset of the input (``INPUT``) or control (``CONTROL``) partition to apply; None: none yet."""
        self.load_partition(partition)
        return self.offsets.next(kind, partition)

    def tick(self, wall: float | None = None) -> Tick:
        """The tick this worker broadcasts: its wall clock and the latest batch end per node."""
        return Tick(wall=self.clock() if wall is None else wall, marks=self.marks.nodes())

    def take(self) -> Outbox:
        """Everything produced since the last call: windows, dead letters, control, state writes."""
        box, self._outbox = self._outbox, Outbox()
        self.registry.write(box)
        self.losses.write(box)
        self.offsets.write(box)  # last: the offset never covers state that is not written before it
        self.metrics.streams.set(len(self.registry.live))
        return box

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Partitions revoked: drop their in-memory state (the new owner restores it from the table)."""
        for p in set(partitions):
            self._loaded.pop(p, None)
            self.registry.forget(p)
            self.losses.forget(p)
            self.marks.forget(p)
            self.offsets.forget(p)
        self.metrics.streams.set(len(self.registry.live))

    @property
    def streams(self) -> dict[StreamKey, LiveStream]:
        return self.registry.live

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
                self.losses.load(partition, k, raw)
        self.offsets.load(self.store, partition)
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
            self.registry.retired[key] = st
            return
        try:
            self.registry.install(st, read_tail(self.store, st))
        except (ValueError, KeyError) as exc:
            log.warning("state of %s is corrupt (%s): discarded", key, exc)
            self.metrics.discarded.inc()
            self._discard(p, st)
            return
        self.registry.attach(st)
        self.marks.note(p, header.node, header.last_end_ns)
        self.metrics.restored.inc()

    def _discard(self, p: int, st: LiveStream) -> None:
        w = self._outbox.writes_for(p)
        w.delete(header_key(st.key))
        for seg in st.segments:
            w.delete(segment_key(st.key, seg.no))

    # --- streams ------------------------------------------------------------------------------------

    def _stream_for(self, key: StreamKey, p: int, b: SyscallBatch | ResourceSample) -> LiveStream:
        st = self.registry.live.get(key)
        node = b.envelope.node
        if st is None:
            st = self.registry.revive(key)  # an idle stream came back: numbering continues where it stopped
            if st is None:
                header = StreamHeader(
                    spec=self.spec.digest,
                    partition=p,
                    cluster=b.envelope.cluster,
                    node=node,
                    pod=b.envelope.pod or PodRef(uid=NODE_POD_UID),
                    container_id=key[1],
                    container_image=b.envelope.container_image,
                )
                st = LiveStream(header)
            self.registry.attach(st)
            self.losses.claim(st, self._outbox)
        h = st.header
        if h.partition != p or h.node != node:
            log.warning("stream %s moved from %d/%s to %d/%s (keyed by pod uid?)", key, h.partition, h.node, p, node)
            self.registry.move(st, p, node)
        return st

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
        builder = self.registry.builder(p, h.node)
        before = builder.state(skey)
        seen_before = before.positions["seen"] if before is not None else 0
        marks = [*st.marks(), (seen_before, b.seq)]
        h.lost += b.lost_before
        windows = builder.add(chunk)
        after = builder.state(skey)
        assert after is not None
        cols = chunk.cols()
        n, ts, base = len(cols), cols.ts, after.positions["base"]
        st.buffer(cols, seen_before, base, b.seq, self.timing.segment_max_events)
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
        if b.envelope.container_image is not None:
            h.container_image = b.envelope.container_image
        if end >= 0:
            self.marks.note(p, h.node, end)
        self._emit(st, windows, marks)
        self.registry.dirty.add(skey)
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
        builder = self.registry.builder(p, h.node)
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
        if msg.envelope.container_image is not None:
            h.container_image = msg.envelope.container_image
        self.marks.note(p, h.node, t)
        self._emit(st, windows, marks)
        self.registry.dirty.add(key)

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
                container_image=h.container_image,
                lost_events=min(lost, INT64_MAX),  # saturated: forged reports can add up past the contract's bound
                first_seq=seq_at(marks, w.first_row),
                observed_ns=w.end_ns if w.end_ns is not None else h.observed_ns,
            )
            self._outbox.windows.append(PendingWindow(w, meta))
            self.metrics.windows.labels(str(w.complete).lower()).inc()

    # --- ticks: watermarks, idle streams ------------------------------------------------------------

    def _on_tick(self, p: int, tick: Tick, caught_up: bool) -> None:
        self.marks.merge(tick.marks)
        for key in self.registry.purge_retired(p, tick.wall, self.timing.retired_ttl_s):
            self._outbox.writes_for(p).delete(header_key(key))
        by_node: dict[str, list[LiveStream]] = {}
        for st in self.registry.in_partition(p):
            by_node.setdefault(st.header.node, []).append(st)
        loaded = self._loaded.get(p, tick.wall)
        idle_ns = self.timing.idle_timeout_ns
        for node, members in by_node.items():
            # other partitions' progress is only trusted once this partition has caught up: while it
            # replays a backlog its own streams are behind the node's latest batches
            mark = self.marks.of(p, node, caught_up)
            for st in members:
                h = st.header
                idle_wall = caught_up and tick.wall - max(h.last_wall, loaded) > self.timing.idle_timeout_s
                idle_event = h.last_event_ns >= 0 and mark - h.last_event_ns > idle_ns
                if idle_wall or idle_event:
                    self._retire(st, tick.wall)
            if mark >= 0 and self.policy.kind == "time":
                self._advance(p, node, mark - self.timing.grace_ns)

    def _advance(self, p: int, node: str, watermark_ns: int) -> None:
        builder = self.registry.builders.get((p, node))
        if builder is None:
            return
        streams = [st for st in self.registry.in_partition(p) if st.header.node == node]
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
                self.registry.dirty.add(st.key)
            if st.key in by_key:
                self._emit(st, by_key[st.key], marks[st.key])

    def _retire(self, st: LiveStream, wall: float) -> None:
        """Flush an idle stream's trailing window and forget its events; keep its numbering."""
        self._emit(st, *self.registry.retire(st, wall))
        self.metrics.retired.inc()

    # --- dead letters -------------------------------------------------------------------------------

    def _dead(self, why: Rejection, raw: bytes | None, key: bytes | None, topic: str, p: int, offset: int) -> None:
        self.metrics.dead_letters.labels(why.reason).inc()
        log.info("dead-letter %s/%d@%d: %s: %s", topic, p, offset, why.reason, why.detail[:300])
        self._outbox.dead_letters.append(DeadLetter(why.reason, why.error, key, raw or b"", topic, p, offset))
