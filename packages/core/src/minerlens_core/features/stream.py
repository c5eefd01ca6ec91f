"""The windowing state machine of one stream (``Stream``), shared by ``windows_from_trace`` and
``WindowBuilder`` so that both emit identical windows for any chunking, and its persistent form
(``StreamState``: positions, samples and process names, without the buffered events).
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from minerlens_core.features.chunks import I64, Cols, StreamChunk, Window
from minerlens_core.features.resources import bracket as _bracket
from minerlens_core.features.resources import process_cpu, summarise
from minerlens_core.features.spec import WindowPolicy
from minerlens_core.schemas.resources import ResourceSnapshot

MAX_SAMPLES = 1024
"""Resource samples a stream keeps while no window consumes them (older ones are dropped)."""
MAX_NAMES = 4096
"""Process names a stream remembers."""


@dataclass
class StreamState:
    """Everything a stream's windowing depends on besides its buffered events (``WindowBuilder.state``).

    ``positions``: base (stream position of the first buffered event), seen (events pushed), next_start
    and covered (count windows), slot, floor and first_slot (time windows).
    """

    positions: dict[str, int]
    samples: list[ResourceSnapshot] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)

    def resumed(self, policy: WindowPolicy, trailing_emitted: bool) -> StreamState:
        """The state of a stream that was flushed (idle) and may come back: no window id is ever reused.

        Count windows continue at the next stride boundary past everything emitted (no buffered events);
        time windows never reopen the slot that was flushed.
        """
        c = dict(self.positions)
        if policy.kind == "time":
            c["floor"] = max(c["floor"], c["slot"] + 1)
            c["base"] = c["seen"]
            c["first_slot"] = 0
        else:
            stride = policy.stride or 1
            nxt = c["next_start"] + (stride if trailing_emitted else 0)
            resume = -(-max(c["seen"], nxt) // stride) * stride
            c.update(base=resume, seen=resume, next_start=resume, covered=resume)
        return StreamState(c, self.samples[-1:], dict(self.names))


POSITIONS = ("base", "seen", "next_start", "covered", "slot", "floor", "first_slot")


class Stream:
    """Windowing state of one stream: buffered tail, position, open slot/next stride, samples, names."""

    def __init__(self, policy: WindowPolicy, head: StreamChunk) -> None:
        self.p, self.head = policy, head
        self.parts: list[Cols] = []
        self.base = 0  # stream position of the first buffered event
        self.seen = 0  # events pushed so far
        self.next_start = 0  # count: position where the next window starts
        self.covered = 0  # count: end of the last emitted window
        self.slot = -1  # time: the open slot, -1 before the first event
        self.floor = -1  # time: no event goes to a slot below this
        self.first_slot = True
        self.samples: list[ResourceSnapshot] = []
        self.names: dict[int, str] = {}

    # --- state ----------------------------------------------------------------------------------

    def state(self) -> StreamState:
        pos = {f: int(getattr(self, f)) for f in POSITIONS}
        return StreamState(pos, list(self.samples), dict(self.names))

    def load(self, st: StreamState, events: Cols | None) -> None:
        for f in POSITIONS:
            setattr(self, f, bool(st.positions[f]) if f == "first_slot" else int(st.positions[f]))
        n = 0 if events is None else len(events)
        if n != self.seen - self.base:
            msg = f"stream {self.head.key}: {n} buffered events for positions [{self.base}, {self.seen})"
            raise ValueError(msg)
        self.parts = [events] if events is not None and n else []
        self.samples = sorted(st.samples, key=lambda s: s.ts_ns)[-MAX_SAMPLES:]
        self.names = dict(st.names)

    def buffered(self) -> Cols:
        return self._buffer()

    # --- events ---------------------------------------------------------------------------------

    def _buffer(self) -> Cols:
        if len(self.parts) > 1:
            self.parts = [Cols.concat(self.parts)]
        return self.parts[0] if self.parts else Cols.empty()

    def name(self, comms: tuple[tuple[int, str], ...]) -> None:
        for pid, comm in comms:
            self.names[pid] = comm
        if len(self.names) > MAX_NAMES:
            for pid in list(self.names)[: len(self.names) - MAX_NAMES]:
                del self.names[pid]

    def push(self, c: Cols) -> list[Window]:
        if self.p.kind == "time":
            return self._push_time(c)
        self.parts.append(c)
        self.seen += len(c)
        size, stride = self.p.size or 0, self.p.stride or 0
        out = []
        while self.next_start + size <= self.seen:
            lo = self.next_start - self.base
            out += self._windows(self.next_start // stride, lo, lo + size, True)
            self.covered = self.next_start + size
            self.next_start += stride
        self._drop(min(self.next_start, self.seen))
        return out

    def _drop(self, upto: int) -> None:
        """Forget buffered events before stream position ``upto`` (and samples no later window needs)."""
        if upto > self.base:
            buf = self._buffer()
            self.parts = [buf.slice(upto - self.base, len(buf))]
            self.base = upto
        if self.p.kind == "count" and self.samples:
            buf = self._buffer()
            known = buf.ts[buf.ts >= 0]
            if len(known):
                self._prune_samples(int(known[0]))

    def _prune_samples(self, before_ns: int) -> None:
        """Keep the latest sample at or before ``before_ns`` (the next window's anchor) and every later one."""
        times = [s.ts_ns for s in self.samples]
        k = bisect.bisect_right(times, before_ns) - 1
        if k > 0:
            del self.samples[:k]

    def _slot_of(self, ts: I64) -> I64:
        return np.maximum.accumulate(np.maximum(ts // self.p.slot_ns, max(self.floor, self.slot)))

    def _push_time(self, c: Cols) -> list[Window]:
        if len(c.ts) and c.ts.min() < 0:
            msg = f"time windows need timestamps; stream {self.head.key} has events without"
            raise ValueError(msg)
        slots = self._slot_of(c.ts)
        cuts = [0, *(np.flatnonzero(np.diff(slots)) + 1).tolist(), len(slots)]
        out = []
        for lo, hi in itertools.pairwise(cuts):
            if hi == lo:
                continue
            if int(slots[lo]) != self.slot:
                out += self._close_slot(self.seen - self.base)
                self.slot = int(slots[lo])
            self.parts.append(c.slice(lo, hi))
            self.seen += hi - lo
        return out

    # --- samples --------------------------------------------------------------------------------

    def add_sample(self, s: ResourceSnapshot) -> list[Window]:
        """A resource sample of the stream; for time windows it moves the slot like an event at ``s.ts_ns``."""
        out: list[Window] = []
        if self.p.kind == "time":
            slot = max(s.ts_ns // self.p.slot_ns, self.floor, self.slot)
            if slot != self.slot:
                out += self._close_slot(self.seen - self.base)
                self.slot = slot
        times = [x.ts_ns for x in self.samples]
        self.samples.insert(bisect.bisect_right(times, s.ts_ns), s)
        if len(self.samples) > MAX_SAMPLES:
            del self.samples[: len(self.samples) - MAX_SAMPLES]
        self.name(tuple((p.pid, p.comm) for p in s.processes if p.comm))
        return out

    # --- windows --------------------------------------------------------------------------------

    def _close_slot(self, n: int, complete: bool = True) -> list[Window]:
        out = []
        if self.slot >= 0:
            out = self._windows(self.slot, 0, n, complete and not self.first_slot, slot=True)
            if n or out:
                self.first_slot = False
            self._drop(self.base + n)
            self._prune_samples((self.slot + 1) * self.p.slot_ns - 1)
        return out

    def _windows(self, index: int, lo: int, hi: int, complete: bool, slot: bool = False) -> list[Window]:
        """The stream window over buffered events [lo, hi), and its per-process windows; [] when too small."""
        c = self._buffer().slice(lo, hi)
        n = len(c)
        known = bool(n and c.ts.min() >= 0)
        # first to just past the last event; min/max: a stream whose time steps back must not end before it starts
        start, end = (int(c.ts.min()), int(c.ts.max()) + 1) if known else (None, None)
        if slot:
            start, end = index * self.p.slot_ns, (index + 1) * self.p.slot_ns
        res = summarise(self.samples, start, end) if self.samples and start is not None and end is not None else None
        min_cpu = self.p.min_cpu_cores
        busy = res is not None and res.cpu_cores >= min_cpu
        if n < (self.p.min_fill or 1) and not (slot and busy):
            return []
        top = res.top if res is not None else None
        h = self.head
        w = Window(
            h.pod_uid, h.namespace, h.pod_name, h.container_id, index, self.base + lo, self.base + hi - 1,
            start, end, c.ids, c.tids, c.ts if known else None, complete,
            pids=c.pids, fdk=c.fdk if n and c.fdk.min() >= 0 else None,
            comm=top.comm if top else "", exe=top.exe if top else "", res=res,
        )  # fmt: skip
        if not self.p.per_process:
            return [w]
        return [w, *self._process_windows(w, c)]

    def _process_windows(self, w: Window, c: Cols) -> list[Window]:
        events: dict[int, int] = {}
        if len(c):
            u, k = np.unique(c.pids, return_counts=True)
            events = dict(zip(u.tolist(), k.tolist(), strict=True))
        cpu: dict[int, float] = {}
        exes: dict[int, str] = {}
        if w.start_ns is not None and w.end_ns is not None and self.samples:
            b = _bracket(self.samples, w.start_ns, w.end_ns)
            if b is not None:
                cpu = process_cpu(b[0], b[1])
                exes = {p.pid: p.exe for p in b[1].processes}
        min_cpu = self.p.min_cpu_cores
        # pid 0 is no process (a trace without thread ids): its events count in the stream window only
        active = {p for p in set(events) | {p for p, x in cpu.items() if x >= min_cpu} if p >= 1}
        if len(active) < 2:
            return []

        def rank(pid: int) -> tuple[float, int, int]:
            x = cpu.get(pid, math.nan)
            return (-(x if not math.isnan(x) else 0.0), -events.get(pid, 0), pid)

        out = []
        for pid in sorted(active, key=rank)[: self.p.max_processes]:
            sub = c.select(c.pids == pid) if len(c) else c
            res = (
                summarise(self.samples, w.start_ns, w.end_ns, pid=pid)
                if w.start_ns is not None and w.end_ns is not None and self.samples
                else None
            )
            known = w.ts_ns is not None
            out.append(
                Window(
                    w.pod_uid, w.namespace, w.pod_name, w.container_id, w.index, w.first_row, w.last_row,
                    w.start_ns, w.end_ns, sub.ids, sub.tids, sub.ts if known else None, w.complete,
                    pids=sub.pids, fdk=sub.fdk if w.fdk is not None else None, pid=pid,
                    comm=self.names.get(pid, ""), exe=exes.get(pid, ""), res=res,
                )
            )  # fmt: skip
        return out

    def advance(self, watermark_ns: int) -> list[Window]:
        """Time windows: close the open slot if it ended at or before ``watermark_ns``."""
        if self.p.kind != "time" or self.slot < 0 or (self.slot + 1) * self.p.slot_ns > watermark_ns:
            return []
        self.floor = watermark_ns // self.p.slot_ns
        return self._close_slot(self.seen - self.base)

    def finish(self) -> list[Window]:
        """End of stream: the trailing partial window, if it is worth emitting."""
        if self.p.kind == "time":
            return self._close_slot(self.seen - self.base, complete=False)
        n = self.seen - self.next_start
        if n >= (self.p.min_fill or 1) and self.seen > self.covered:
            lo = self.next_start - self.base
            return self._windows(self.next_start // (self.p.stride or 1), lo, lo + n, False)
        return []
