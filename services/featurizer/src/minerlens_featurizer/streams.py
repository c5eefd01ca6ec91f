"""Where the featurizer engine keeps its streams: one core ``WindowBuilder`` per (partition, node), the live streams
(also by partition), the retired ones (idle: flushed, keeping their window numbering until ``retired_ttl_s``) and
which streams changed since the last checkpoint.
"""

from __future__ import annotations

import numpy as np
from minerlens_core.features import StreamChunk, StreamKey, Window, WindowBuilder
from minerlens_core.features.spec import WindowPolicy
from minerlens_core.features.windows import Cols

from minerlens_featurizer.outbox import Outbox
from minerlens_featurizer.state import LiveStream, StreamHeader, keep_state, window_state


class StreamRegistry:
    """The streams of the partitions this worker owns, and their window builders."""

    def __init__(self, policy: WindowPolicy) -> None:
        self.policy = policy
        self.builders: dict[tuple[int, str], WindowBuilder] = {}
        self.live: dict[StreamKey, LiveStream] = {}
        self.by_partition: dict[int, dict[StreamKey, LiveStream]] = {}
        self.retired: dict[StreamKey, LiveStream] = {}
        self.dirty: set[StreamKey] = set()

    def builder(self, p: int, node: str) -> WindowBuilder:
        b = self.builders.get((p, node))
        if b is None:
            b = self.builders[(p, node)] = WindowBuilder(self.policy)
        return b

    def in_partition(self, p: int) -> list[LiveStream]:
        return list(self.by_partition.get(p, {}).values())

    @staticmethod
    def _head(h: StreamHeader) -> StreamChunk:
        empty = np.zeros(0, np.int16), np.zeros(0, np.int32)
        return StreamChunk(h.pod.uid, h.container_id, *empty, namespace=h.pod.namespace, pod_name=h.pod.name)

    def install(self, st: LiveStream, events: Cols | None) -> None:
        """Reinstall a stream in its builder from its header and buffered ``events`` (restore, or back from idle)."""
        h = st.header
        self.builder(h.partition, h.node).restore(self._head(h), window_state(h), events)

    def attach(self, st: LiveStream) -> None:
        self.live[st.key] = st
        self.by_partition.setdefault(st.header.partition, {})[st.key] = st

    def detach(self, st: LiveStream) -> None:
        self.live.pop(st.key, None)
        self.by_partition.get(st.header.partition, {}).pop(st.key, None)

    def revive(self, key: StreamKey) -> LiveStream | None:
        """A retired stream that came back: its numbering continues where it stopped (not attached yet)."""
        st = self.retired.pop(key, None)
        if st is not None:
            st.header.retired = None
            self.install(st, None)
        return st

    def move(self, st: LiveStream, p: int, node: str) -> None:
        """The stream's messages now come from another partition or node: its builder state follows."""
        h = st.header
        self.detach(st)
        self.builder(h.partition, h.node).hand_over(st.key, self.builder(p, node))
        if h.node != node:
            h.last_seq, h.last_end_ns = None, -1
        h.partition, h.node = p, node
        self.attach(st)
        self.dirty.add(st.key)  # persisted even if the message is then dropped (a resent batch or sample)

    def retire(self, st: LiveStream, wall: float) -> tuple[list[Window], list[tuple[int, int]]]:
        """Flush an idle stream and forget its events, keeping its numbering; its trailing windows and marks."""
        h = st.header
        builder = self.builder(h.partition, h.node)
        state = builder.state(st.key) or window_state(h)
        marks = st.marks()
        windows = builder.flush(st.key)
        keep_state(h, state.resumed(self.policy, trailing_emitted=bool(windows)))
        h.retired = wall
        st.drop_all_segments()
        self.detach(st)
        self.retired[st.key] = st
        self.dirty.add(st.key)
        return windows, marks

    def purge_retired(self, p: int, wall: float, ttl_s: float) -> list[StreamKey]:
        """Drop the partition's streams retired for longer than ``ttl_s``; their keys (to delete their headers)."""
        gone = []
        for key, st in list(self.retired.items()):
            if st.header.partition == p and wall - (st.header.retired or wall) > ttl_s:
                del self.retired[key]
                self.dirty.discard(key)
                gone.append(key)
        return gone

    def write(self, box: Outbox) -> None:
        """The checkpoint of every stream that changed: segments, headers, tombstones."""
        for key in self.dirty:
            st = self.live.get(key) or self.retired.get(key)
            if st is not None:
                st.write_to(box.writes_for(st.header.partition))
        self.dirty.clear()

    def forget(self, p: int) -> None:
        """The partition was revoked: its streams and builders go (the new owner restores them)."""
        for key in list(self.by_partition.pop(p, {})):
            self.live.pop(key, None)
            self.dirty.discard(key)
        for key in [k for k, st in self.retired.items() if st.header.partition == p]:
            del self.retired[key]
        for bk in [bk for bk in self.builders if bk[0] == p]:
            del self.builders[bk]
