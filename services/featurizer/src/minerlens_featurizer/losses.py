"""Events lost before they reached a window, as drop reports say: a pod's loss goes to its streams of the
partition, or waits (persisted under ``p|<pod>``) for the pod's next stream; a node-wide loss goes to the node's
streams of this partition now and to the other partitions through the control topic (``NodeLoss``). The next
window of a stream carries what it took (``lost_events``).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable

from minerlens_core.schemas import DropReport

from minerlens_featurizer.control import NodeLoss, encode_control
from minerlens_featurizer.metrics import FeaturizerMetrics
from minerlens_featurizer.outbox import ControlOut, Outbox
from minerlens_featurizer.state import POD_LOSS_PREFIX, LiveStream, pod_loss_key
from minerlens_featurizer.streams import StreamRegistry

_RECENT_DROPS = 4096


class Losses:
    """Drop reports into the streams' ``lost`` counts; pod losses waiting for a stream, and their persistence."""

    def __init__(self, streams: StreamRegistry, metrics: FeaturizerMetrics, clock: Callable[[], float]) -> None:
        self.streams = streams
        self.metrics = metrics
        self.clock = clock
        self._waiting: dict[str, tuple[int, int]] = {}  # pod uid -> (partition, lost events)
        self._dirty: set[str] = set()
        self._recent: OrderedDict[bytes, None] = OrderedDict()

    def on_drop(self, report: DropReport, p: int, raw: bytes, origin: str, outbox: Outbox) -> None:
        digest = hashlib.sha256(raw).digest()
        if digest in self._recent:  # the collector resent it
            self.metrics.duplicates.inc()
            return
        self._recent[digest] = None
        if len(self._recent) > _RECENT_DROPS:
            self._recent.popitem(last=False)
        lost = report.lost_events
        self.metrics.lost_events.labels(report.reason).inc(lost)
        if lost == 0:
            return
        pod = report.envelope.pod
        if pod is None:  # node-wide: that node's streams live in every partition
            node_loss = NodeLoss(node=report.envelope.node, lost_events=lost, reason=report.reason, origin=origin)
            # this partition's streams take it now, in input order (through the control topic a tick could
            # retire a stream first); the other partitions get a copy through the control topic
            self.on_node_loss(p, node_loss)
            outbox.control.append(ControlOut(encode_control(node_loss), skip=p))
            return
        hit = [st for st in self.streams.in_partition(p) if st.header.pod.uid == pod.uid]
        for st in hit:
            st.header.lost += lost
            self.streams.dirty.add(st.key)
        if not hit:  # no stream yet (or retired): the pod's next window carries it
            _, before = self._waiting.get(pod.uid, (p, 0))
            self._waiting[pod.uid] = (p, before + lost)
            self._dirty.add(pod.uid)

    def on_node_loss(self, p: int, msg: NodeLoss) -> None:
        for st in self.streams.in_partition(p):
            if st.header.node == msg.node:
                st.header.lost += msg.lost_events
                self.streams.dirty.add(st.key)

    def claim(self, st: LiveStream, outbox: Outbox) -> None:
        """A new (or revived) stream takes the loss its pod's reports left waiting."""
        pending = self._waiting.pop(st.header.pod.uid, None)
        if pending is not None:
            st.header.lost += pending[1]
            outbox.writes_for(pending[0]).delete(pod_loss_key(st.header.pod.uid))
            self.streams.dirty.add(st.key)

    def load(self, partition: int, key: bytes, raw: bytes) -> None:
        """A stored waiting loss (``p|<pod>``), if it belongs to ``partition``."""
        body = json.loads(raw)
        if int(body["partition"]) == partition:
            self._waiting[key[len(POD_LOSS_PREFIX) :].decode()] = (partition, int(body["lost"]))

    def write(self, box: Outbox) -> None:
        """The waiting losses that changed, as state writes."""
        for uid in self._dirty:
            pending = self._waiting.get(uid)
            if pending is not None:
                body = {"partition": pending[0], "lost": pending[1], "wall": self.clock()}
                box.writes_for(pending[0]).set(pod_loss_key(uid), json.dumps(body).encode())
        self._dirty.clear()

    def forget(self, partition: int) -> None:
        for uid in [u for u, (pp, _) in self._waiting.items() if pp == partition]:
            del self._waiting[uid]
