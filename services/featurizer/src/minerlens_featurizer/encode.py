"""Pending windows -> ``FeatureWindow`` messages: one ``vectorize_many`` call per micro-batch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from minerlens_core.features import Window, vectorize_many, window_sequence
from minerlens_core.kafka import Headers, message_headers
from minerlens_core.schemas import Envelope
from minerlens_core.schemas.windows import FeatureWindow, ProcessRef, window_id

from minerlens_featurizer.outbox import PendingWindow
from minerlens_featurizer.spec import ServedSpec

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_CORES = float(1 << 20)
"""``ProcessRef.cpu_cores``'s bound: CPU counters far apart in a sample or two (forged) give more; capped"""


@dataclass(frozen=True, slots=True)
class Record:
    key: bytes
    value: bytes
    headers: Headers


def process_ref(w: Window) -> ProcessRef | None:
    """The process a window is about (process windows) or its busiest process (stream windows), if known."""
    top = w.res.top if w.res is not None else None
    pid = w.pid if w.pid is not None else (top.pid if top is not None else None)
    if pid is None or pid < 1:
        return None
    cores = w.res.cpu_cores if w.pid is not None and w.res is not None else (top.cpu_cores if top else math.nan)
    return ProcessRef(
        pid=pid,
        comm=w.comm[:64],
        exe=w.exe[:1024],
        cpu_cores=None if math.isnan(cores) else round(min(max(cores, 0.0), MAX_CORES), 4),
    )


def utc_from_ns(ns: int) -> datetime:
    """Exact (microsecond) UTC datetime of a Unix-ns timestamp."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


class WindowEncoder:
    """Vectorises windows with the served spec and builds their messages (NaN features become null)."""

    def __init__(self, served: ServedSpec) -> None:
        self.spec = served.spec
        self.tag = served.tag

    def messages(self, pending: Sequence[PendingWindow]) -> list[FeatureWindow]:
        if not pending:
            return []
        x = vectorize_many([p.window for p in pending], self.spec)
        rows: list[list[float | None]] = x.astype(np.float64).tolist()
        for r, c in zip(*np.nonzero(np.isnan(x)), strict=True):
            rows[int(r)][int(c)] = None
        out = []
        for p, features in zip(pending, rows, strict=True):
            w, m = p.window, p.meta
            envelope = Envelope(
                cluster=m.cluster,
                node=m.node,
                pod=m.pod,
                container_id=m.container_id,
                container_image=m.container_image,
                observed_at=utc_from_ns(m.observed_ns),
            )
            # model_construct: every field is built here from validated parts; skipping the per-value
            # finiteness check keeps encoding off the hot path (the tests decode every output).
            out.append(
                FeatureWindow.model_construct(
                    envelope=envelope,
                    window_id=window_id(m.pod.uid, m.container_id, self.tag, w.index, w.pid),
                    policy=self.tag,
                    index=w.index,
                    scope="stream" if w.pid is None else "process",
                    process=process_ref(w),
                    start_ns=w.start_ns,
                    end_ns=w.end_ns,
                    first_seq=m.first_seq,
                    count=w.count,
                    complete=w.complete,
                    lost_events=m.lost_events,
                    feature_version=self.spec.version,
                    feature_digest=self.spec.digest,
                    features=features,
                    sequence=window_sequence(w, self.spec.params).tolist(),
                )
            )
        return out

    def encode(self, pending: Sequence[PendingWindow]) -> list[Record]:
        return [
            Record(fw.envelope.key, fw.model_dump_json().encode(), message_headers(fw)) for fw in self.messages(pending)
        ]
