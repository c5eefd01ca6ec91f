"""What the worker does with a micro-batch it cannot deliver whole: isolate the window, retry the broker.

* ``encode_isolated``: ``WindowEncoder.encode`` for the whole micro-batch; should it raise (a bug some
  window triggers), the windows are encoded again in halves and each window that fails alone becomes
  an ``encode_error`` dead letter: the other windows, pods and partitions flow on.
* ``window_dead_letter``: that dead letter: the window's identity, span and events as JSON, keyed by the
  pod uid, with the stream's identity in ``minerlens.*`` headers (replayable, nothing lost).
* ``retrying``: broker sends and state writes are retried with backoff (``minerlens_core.retrying``) instead
  of crashing the worker (a crash would replay the same batch; the broker being away is no reason to die).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from minerlens_core.kafka import Headers, dead_letter_headers, split_failures
from minerlens_core.retrying import Backoff, retry

from minerlens_featurizer.encode import Record, WindowEncoder
from minerlens_featurizer.outbox import PendingWindow

log = logging.getLogger(__name__)
T = TypeVar("T")

ENCODE_ERROR = "encode_error"
UNDELIVERABLE = "undeliverable_window"
MAX_DEAD_EVENTS = 100_000
"""events of a dead-lettered window kept in its message (more are cut, ``truncated`` says so)"""


@dataclass(frozen=True, slots=True)
class WindowLetter:
    key: bytes | None
    value: bytes
    headers: Headers


def encode_isolated(
    encoder: WindowEncoder, pending: Sequence[PendingWindow]
) -> tuple[list[Record], list[tuple[PendingWindow, Exception]]]:
    """The records of every window that encodes, and the windows that fail on their own with why."""
    return split_failures(pending, encoder.encode)


def window_dead_letter(
    p: PendingWindow, reason: str, error: BaseException | None, source_topic: str, partition: int | None, offset: int
) -> WindowLetter:
    """A window that cannot be delivered as a ``FeatureWindow``, as a dead letter of the input topic."""
    w, m = p.window, p.meta
    n = len(w.ids)
    cut = min(n, MAX_DEAD_EVENTS)
    body = {
        "kind": UNDELIVERABLE,
        "reason": reason,
        "cluster": m.cluster,
        "node": m.node,
        "pod": {"uid": m.pod.uid, "namespace": m.pod.namespace, "name": m.pod.name},
        "container_id": m.container_id,
        "index": w.index,
        "start_ns": w.start_ns,
        "end_ns": w.end_ns,
        "complete": w.complete,
        "first_seq": m.first_seq,
        "lost_events": m.lost_events,
        "count": n,
        "truncated": cut < n,
        "syscalls": [int(x) for x in w.ids[:cut]],
        "tids": [int(x) for x in w.tids[:cut]],
        "ts_ns": None if w.ts_ns is None else [int(x) for x in w.ts_ns[:cut]],
    }
    stream = f"{m.node}/{m.pod.uid}/{m.container_id}"
    headers = [
        *dead_letter_headers(reason, error, source_topic, offset, partition),
        ("minerlens.kind", UNDELIVERABLE.encode()),
        ("minerlens.stream", stream.encode()[:1024]),
        ("minerlens.pod_uid", m.pod.uid.encode()),
        ("minerlens.window_index", str(w.index).encode()),
    ]
    return WindowLetter(m.pod.uid.encode(), json.dumps(body, separators=(",", ":")).encode(), headers)


async def retrying(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    stopping: Callable[[], bool],
    on_failure: Callable[[BaseException], None] | None = None,
    backoff_s: float = 0.2,
    backoff_max_s: float = 5.0,
) -> T:
    """``attempt()`` until it succeeds; between failures wait (doubling, capped). Re-raises once stopping."""
    return await retry(
        attempt,
        retry_on=(Exception,),
        backoff=Backoff(initial_s=backoff_s, max_s=backoff_max_s),
        describe=what,
        log=log,
        stopping=stopping,
        on_retry=None if on_failure is None else lambda exc, _delay: on_failure(exc),
    )
