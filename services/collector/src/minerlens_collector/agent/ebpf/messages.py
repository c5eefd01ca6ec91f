"""``AggregateWindow`` -> one ``SyscallAggregate`` per (pod, container) stream (contract: schemas/aggregates.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from minerlens_core.schemas import ContainerImage, Envelope, PodRef
from minerlens_core.schemas.aggregates import (
    CountColumns,
    PairColumns,
    SampleColumns,
    SyscallAggregate,
    TripleColumns,
)
from minerlens_core.schemas.events import TaskInfo
from minerlens_core.syscalls import Arch
from pydantic import BaseModel

from minerlens_collector.agent.ebpf.cgroup_ids import StreamKey
from minerlens_collector.agent.ebpf.source import AggregateWindow
from minerlens_collector.procfs import printable

PodLookup = Callable[[str], PodRef | None]
ImageLookup = Callable[[str], ContainerImage | None]
CommLookup = Callable[[int], str]
C = TypeVar("C", bound=BaseModel)


def _rows(arr: npt.NDArray[np.void], cgids: npt.NDArray[np.uint64]) -> npt.NDArray[np.void]:
    return arr[np.isin(arr["cgid"], cgids)]


def _ints(col: npt.NDArray[np.generic]) -> list[int]:
    return [int(v) for v in col.tolist()]


def _cols(model: type[C], arr: npt.NDArray[np.void], **fields: str) -> C:
    """``model`` (a column group of the contract) from the named fields of ``arr``, validated."""
    return model.model_validate({name: _ints(arr[col]) for name, col in fields.items()})


@dataclass
class AggregateMessages:
    """Builds the messages of each window; ``seq`` is contiguous per stream (a gap means a lost window)."""

    node: str
    cluster: str
    arch: Arch
    cheap: Iterable[int]
    pod_lookup: PodLookup | None = None
    image_lookup: ImageLookup | None = None
    comm: CommLookup | None = None
    _seq: dict[StreamKey, int] = field(default_factory=dict)

    def build(self, win: AggregateWindow) -> list[SyscallAggregate]:
        d, out = win.data, []
        cheap = sorted(set(self.cheap))
        for key in sorted(set(win.streams.values())):
            cgids = win.cgroups_of(key)
            counts = _rows(d.counts, cgids)
            lost = sum(win.lost_by_cgroup.get(int(c), 0) for c in cgids)
            if len(counts) == 0 and not lost:
                continue  # no call and no loss: nothing to say for this stream in this window
            g2, g3, sm = _rows(d.ngram2, cgids), _rows(d.ngram3, cgids), _rows(d.samples, cgids)
            uid, container_id = key
            pod = (self.pod_lookup(uid) if self.pod_lookup else None) or PodRef(uid=uid)
            image = self.image_lookup(container_id) if self.image_lookup and container_id else None
            tids = sorted(
                {(int(t), int(p)) for t, p in zip(counts["tid"].tolist(), counts["tgid"].tolist(), strict=True)}
            )
            seq = self._seq.get(key, 0)
            self._seq[key] = seq + 1
            dt = np.maximum(sm["ts_ns"].astype(np.int64) - win.start_ns, 0)  # clock conversion jitter: never < 0
            out.append(
                SyscallAggregate(
                    envelope=Envelope(
                        cluster=self.cluster, node=self.node, pod=pod, container_id=container_id, container_image=image
                    ),
                    source="ebpf",
                    arch=self.arch,
                    seq=seq,
                    start_ns=win.start_ns,
                    end_ns=win.end_ns,
                    cheap=cheap,
                    counts=_cols(CountColumns, counts, pid="tgid", tid="tid", nr="nr", n="n"),
                    ngram2=_cols(PairColumns, g2, pid="tgid", a="a", b="b", nc="nc", n="n"),
                    ngram3=_cols(TripleColumns, g3, pid="tgid", a="a", b="b", c="c", n="n"),
                    samples=SampleColumns(tid=_ints(sm["tid"]), nr=_ints(sm["nr"]), dt_ns=_ints(dt)),
                    tasks=[
                        TaskInfo(tid=t, pid=p, comm=printable(self.comm(t), 64) if self.comm else "") for t, p in tids
                    ],
                    lost_records=lost,
                )
            )
        return out
