"""Helpers of the featurizer tests: collector-style batches from the committed sample traces, the
offline reference (the training code path), and driving the engine or the Faust agents."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from minerlens_collector.tools.replay import ReplayPod, batches_from_trace, interleave
from minerlens_core.features import FeatureSpec, vectorize_many, window_sequence, windows_from_trace
from minerlens_core.schemas import DropReport, SyscallBatch
from minerlens_core.schemas.windows import FeatureWindow, decode_window, window_id
from minerlens_core.traces import Trace, read_trace
from minerlens_featurizer.app import FeaturizerApp
from minerlens_featurizer.control import NodeLoss, Tick, encode_control
from minerlens_featurizer.encode import WindowEncoder
from minerlens_featurizer.engine import Featurizer
from minerlens_featurizer.outbox import DeadLetter
from minerlens_featurizer.spec import ServedSpec, policy_tag

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample-v1" / "traces"
MODEL = ROOT / "models" / "default"  # the shipped model: its spec (2-s time windows) is what production serves
T0 = (time.time_ns() // 10**9 - 3600) * 10**9  # replay start: an hour ago, on a whole second
FAR_FUTURE = 4e9  # a wall clock past every idle timeout


@dataclass(frozen=True)
class ReplayedPod:
    uid: str
    trace: Trace
    batches: list[SyscallBatch]


def replay(
    files: Sequence[str],
    *,
    node: str = "node-a",
    start_ns: int | None = T0,
    max_events: int = 2048,
    max_age_s: float = 0.5,
) -> tuple[list[ReplayedPod], list[SyscallBatch]]:
    """Each trace as its own pod (``pod-<i>``), batched like a collector; all batches merged by time."""
    pods = []
    for i, name in enumerate(files):
        trace = read_trace(SAMPLE / f"{name}.parquet")
        uid = f"pod-{i}"
        batches = batches_from_trace(
            trace,
            node=node,
            pod=ReplayPod(uid, "ns", name),
            start_ns=start_ns,
            max_events=max_events,
            max_age_s=max_age_s,
        )
        pods.append(ReplayedPod(uid, trace, batches))
    return pods, interleave([p.batches for p in pods])


def per_pod(values: Sequence[bytes]) -> dict[str, list[bytes]]:
    """Window messages per pod, in emission order (the order that matters: one pod's windows)."""
    out: dict[str, list[bytes]] = {}
    for v in values:
        pod = decode_window(v).envelope.pod
        out.setdefault(pod.uid if pod else "", []).append(v)
    return out


def served(spec: FeatureSpec) -> ServedSpec:
    return ServedSpec(spec, policy_tag(spec.window))


@dataclass(frozen=True)
class Expected:
    features: npt.NDArray[np.float32]
    sequence: list[int]
    complete: bool
    count: int
    start_ns: int | None
    end_ns: int | None


def offline(pods: Sequence[ReplayedPod], spec: FeatureSpec, start_ns: int | None = T0) -> dict[str, Expected]:
    """window id -> what training computes for it: ``windows_from_trace`` + ``vectorize_many`` + ``window_sequence``.

    The offline windows come from the trace file itself (timestamps shifted like the replay), not from
    the batches, so the comparison covers the collector-style batching too.
    """
    tag = policy_tag(spec.window)
    out: dict[str, Expected] = {}
    for pod in pods:
        table = pod.trace.table
        ts = table.column("ts_ns").to_numpy()
        shift = start_ns - int(ts.min()) if start_ns is not None else 0
        import pyarrow as pa

        shifted = table.set_column(table.schema.get_field_index("ts_ns"), "ts_ns", pa.array(ts + shift, pa.int64()))
        windows = list(windows_from_trace(shifted, spec.window))
        x = vectorize_many(windows, spec)
        for w, row in zip(windows, x, strict=True):
            wid = window_id(pod.uid, w.container_id, tag, w.index, w.pid)  # w.pid: a process window's process
            out[wid] = Expected(
                row, window_sequence(w, spec.params).tolist(), w.complete, w.count, w.start_ns, w.end_ns
            )
    return out


def _stream_of(wid: str) -> str:
    """The (pod, container, policy) stream of a window id (``.../<index>`` or ``.../<index>/p<pid>``)."""
    parts = wid.split("/")
    is_process = parts[-1].startswith("p") and parts[-1][1:].isdigit()
    return "/".join(parts[:-2] if is_process else parts[:-1])


def assert_same(got: dict[str, FeatureWindow], want: dict[str, Expected]) -> int:
    """Exactly the offline windows: same ids, features (NaN-aware, bit for bit), sequences, counts, spans.

    One difference is legitimate: offline, a trace's last time slot is ``complete=False`` because the
    capture ended; live, when the node's watermark passed a pod's last slot the slot was observed to
    its end (``complete=True``). Returns how many windows differ only that way.
    """
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    assert not missing, f"missing {missing[:5]}"
    assert not extra, f"extra {extra[:5]}"
    last = {}  # pod stream -> id of its last window (process windows share their stream's slots)
    for wid, e in want.items():
        stream = _stream_of(wid)
        if stream not in last or (e.start_ns or 0) > (want[last[stream]].start_ns or 0):
            last[stream] = wid
    closed_by_watermark = 0
    wrong = []
    for wid, fw in sorted(got.items(), key=lambda kv: (kv[0].rsplit("/", 1)[0], kv[1].index)):
        e = want[wid]
        vec = np.array(fw.vector(), dtype=np.float64)
        ref = e.features.astype(np.float64)
        differ = np.flatnonzero(~((vec == ref) | (np.isnan(vec) & np.isnan(ref))))
        if differ.size:
            wrong.append(
                f"{wid}: features {differ[:10]} differ; count {fw.count} (offline {e.count}),"
                f" start {fw.start_ns} ({e.start_ns}), first_seq {fw.first_seq}, complete {fw.complete} ({e.complete})"
            )
    assert not wrong, f"{len(wrong)} of {len(got)} windows differ:\n" + "\n".join(wrong[:8])
    for wid, fw in got.items():
        e = want[wid]
        assert fw.sequence == e.sequence, wid
        assert (fw.count, fw.start_ns, fw.end_ns) == (e.count, e.start_ns, e.end_ns), wid
        if fw.complete != e.complete:
            assert fw.complete, f"{wid}: complete={fw.complete}, offline {e.complete}"
            final = want[last[_stream_of(wid)]]
            assert e.start_ns == final.start_ns, f"{wid}: only a window of a stream's last slot may differ"
            closed_by_watermark += 1
    return closed_by_watermark


class EngineRun:
    """Drives a ``Featurizer`` the way the Faust adapter does, with a dict as the state table."""

    def __init__(self, spec: FeatureSpec, settings, store: dict[bytes, bytes] | None = None, clock=time.time) -> None:
        self.served = served(spec)
        self.settings = settings
        self.store: dict[bytes, bytes] = {} if store is None else store
        self.clock = clock
        self.engine = Featurizer(self.served, settings, self.store, clock=clock)
        self.encoder = WindowEncoder(self.served)
        self.out: list[bytes] = []
        self.dead: list[DeadLetter] = []
        self.control: list[bytes] = []
        self.offset = 0

    def feed(
        self, value: bytes | None, partition: int = 0, key: bytes | None = b"k", offset: int | None = None
    ) -> None:
        """One input message; offsets count up unless given (a redelivery carries its original offset)."""
        if offset is not None:
            self.offset = offset
        self.engine.on_input(value, key, partition, self.offset, "in")
        self.offset += 1

    def feed_batches(
        self,
        batches: Sequence[SyscallBatch | DropReport],
        partition: int = 0,
        checkpoint_every: int = 1,
        offset: int | None = None,
    ) -> None:
        for i, b in enumerate(batches):
            self.feed(b.model_dump_json().encode(), partition, b.envelope.key, offset if i == 0 else None)
            if (i + 1) % checkpoint_every == 0:
                self.checkpoint()

    def tick(
        self, wall: float, partition: int = 0, marks: dict[str, int] | None = None, caught_up: bool = True
    ) -> None:
        self.engine.on_control(encode_control(Tick(wall=wall, marks=marks or {})), partition, caught_up=caught_up)

    def checkpoint(self) -> None:
        """What a flush does: encode and 'deliver' the windows, then persist the state writes."""
        box = self.engine.take()
        self.out += [r.value for r in self.encoder.encode(box.windows)]
        self.dead += box.dead_letters
        self.control += [c.value for c in box.control]
        for writes in box.writes.values():
            self.store.update(writes.sets)
            for k in writes.deletes:
                self.store.pop(k, None)

    def restart(self) -> None:
        """A new engine (process) on the persisted state."""
        self.engine = Featurizer(self.served, self.settings, self.store, clock=self.clock)

    def windows(self) -> list[FeatureWindow]:
        return [decode_window(v) for v in self.out]


async def until(cond: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)


def drain(channel_iterator) -> list:
    """Events delivered so far to an in-memory output channel's subscriber."""
    out = []
    while not channel_iterator.queue.empty():
        out.append(channel_iterator.queue.get_nowait())
    return out


Item = tuple[bytes | None, bytes | None, int] | tuple[Tick | NodeLoss, int]


async def through_agents(
    fa: FeaturizerApp, items: Sequence[Item], *, final_tick: bool = True, first_offset: int | None = None
) -> tuple[list, list, list]:
    """Run messages through the real Faust agents (``test_context``, memory store).

    ``items`` are input messages ``(value, key, partition)`` or control messages ``(Tick | NodeLoss,
    partition)``; a control message is put once everything before it was processed, so it lands at
    that point of the stream.
    Returns the events that reached the windows, dead-letter and control outputs. ``final_tick`` sends
    every partition a tick past the idle timeout, which flushes each stream's trailing window.
    """
    subs = [ch.__aiter__() for ch in (fa.outputs.windows, fa.outputs.dead_letters, fa.outputs.control)]
    put = fa.events_seen
    offsets = _OFFSETS.setdefault(id(fa), [0, 0])  # test_context numbers messages from 0 each time: continue
    if first_offset is not None:
        offsets[0] = first_offset
    async with fa.featurize_agent.test_context() as agent, fa.control_agent.test_context() as control:
        agent.sent_offset, control.sent_offset = offsets
        for item in items:
            if isinstance(item[0], Tick | NodeLoss):
                await until(lambda n=put: fa.events_seen >= n)
                await control.put(value=encode_control(item[0]), partition=item[1], wait=False)
            else:
                value, key, partition = item  # type: ignore[misc]
                await agent.put(value=value, key=key, partition=partition, wait=False)
            put += 1
        await until(lambda: fa.events_seen >= put and fa.held() == 0)
        if final_tick:
            for p in range(fa.partitions):
                await control.put(value=encode_control(Tick(wall=FAR_FUTURE)), partition=p, wait=False)
            await until(lambda: fa.events_seen >= put + fa.partitions and fa.held() == 0)
        offsets[:] = [agent.sent_offset, control.sent_offset]
    return drain(subs[0]), drain(subs[1]), drain(subs[2])


_OFFSETS: dict[int, list[int]] = {}
