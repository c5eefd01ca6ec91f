"""How far the featurizer engine got: ``Offsets``, the last input and control offset applied per partition (persisted
with the state, so that messages Kafka redelivers are not applied twice), and ``Watermarks``, the latest event time
per (partition, node) and per node (they close time windows and retire idle streams).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from minerlens_featurizer.metrics import FeaturizerMetrics
from minerlens_featurizer.outbox import Outbox
from minerlens_featurizer.state import StateReader, offset_key

log = logging.getLogger(__name__)

INPUT, CONTROL = b"in", b"ctl"
"""The topic kinds of ``Offsets``: the syscall (input) topic and the control topic."""


class Offsets:
    """The last applied offset per (topic kind, partition), and which changed since the last checkpoint."""

    def __init__(self, metrics: FeaturizerMetrics) -> None:
        self.metrics = metrics
        self._applied: dict[tuple[bytes, int], int] = {}
        self._touched: set[tuple[bytes, int]] = set()

    def next(self, kind: bytes, partition: int) -> int | None:
        """The next offset to apply; None: none applied (or stored) yet."""
        applied = self._applied.get((kind, partition))
        return None if applied is None else applied + 1

    def first_time(self, kind: bytes, partition: int, offset: int) -> bool:
        """Whether the message at ``offset`` is new (then it counts as applied); False for a redelivered one."""
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

    def load(self, store: StateReader, partition: int) -> None:
        """The partition's offsets the stored state includes."""
        for kind in (INPUT, CONTROL):
            stored = store.get(offset_key(kind, partition))
            if stored is not None:
                self._applied[(kind, partition)] = max(self._applied.get((kind, partition), -1), int(stored))

    def write(self, box: Outbox) -> None:
        """The changed offsets as state writes (after every other write of the checkpoint)."""
        for kind, p in self._touched:
            box.writes_for(p).set(offset_key(kind, p), str(self._applied[(kind, p)]).encode())
        self._touched.clear()

    def forget(self, partition: int) -> None:
        for kind in (INPUT, CONTROL):
            self._applied.pop((kind, partition), None)
            self._touched.discard((kind, partition))


class Watermarks:
    """The latest event time (ns) seen per (partition, node), and per node over every partition."""

    def __init__(self) -> None:
        self._local: dict[tuple[int, str], int] = {}
        self._nodes: dict[str, int] = {}

    def note(self, partition: int, node: str, ns: int) -> None:
        mk = (partition, node)
        self._local[mk] = max(self._local.get(mk, -1), ns)
        self._nodes[node] = max(self._nodes.get(node, -1), ns)

    def merge(self, marks: Mapping[str, int]) -> None:
        """Other workers' per-node marks (a watermark tick)."""
        for node, mark in marks.items():
            self._nodes[node] = max(self._nodes.get(node, -1), mark)

    def nodes(self) -> dict[str, int]:
        return dict(self._nodes)

    def of(self, partition: int, node: str, caught_up: bool) -> int:
        """The node's mark for the partition's streams; other partitions' progress only once it caught up."""
        mark = self._local.get((partition, node), -1)
        return max(mark, self._nodes.get(node, -1)) if caught_up else mark

    def forget(self, partition: int) -> None:
        for mk in [mk for mk in self._local if mk[0] == partition]:
            del self._local[mk]
