"""``BpfProgram``: load ``minerlens.bpf.o``, attach it, and read-and-reset its per-window aggregates.

Generations: every key carries the generation (``epoch & 1``) it was written in; ``collect`` bumps
``config.epoch``, waits
a short grace (programs that read the old generation finish within microseconds), reads the old generation with
one batch lookup per map and deletes exactly the keys it read. An increment that lands between that lookup and
the delete is the only thing that can go unseen (a window of microseconds, once per window); an entry created in
the old generation after the read is kept and read with that generation two windows later, never lost.
"""

from __future__ import annotations

import ctypes
import errno
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from minerlens_collector.agent.ebpf import layout as L
from minerlens_collector.agent.ebpf.libbpf import (
    BPF_ANY,
    BPF_NOEXIST,
    BpfError,
    SampleFn,
    check,
    check_ptr,
    lib,
    possible_cpus,
)

GRACE_S = 0.002
DEFAULT_OBJECT = Path(__file__).resolve().parents[4] / "bpf" / "build" / "minerlens.bpf.o"

_LAYOUT = {  # map -> (key size, value size) as the loader expects them
    L.MAP_CONFIG: (4, L.CONFIG.itemsize),
    L.MAP_CGROUPS: (8, L.CGROUP_STATE.itemsize),
    L.MAP_CHEAP: (4, 4),
    L.MAP_COUNTS: (L.COUNT_KEY.itemsize, 8),
    L.MAP_NGRAM2: (L.NGRAM_KEY.itemsize, 8),
    L.MAP_NGRAM3: (L.NGRAM_KEY.itemsize, 8),
    L.MAP_LOSS: (4, 8),
    L.MAP_SEEN: (4, 8),
}


@dataclass(frozen=True)
class Collected:
    """One generation read from the kernel: structured arrays (see ``layout``) with a ``n`` count column."""

    counts: npt.NDArray[np.void]  # COUNT_KEY fields + n
    ngram2: npt.NDArray[np.void]  # NGRAM_KEY fields + n
    ngram3: npt.NDArray[np.void]
    samples: npt.NDArray[np.void]  # SAMPLE records of this generation, in ring order
    lost: dict[str, int]  # cumulative per reason (LOSS_REASONS), node-wide
    lost_by_cgroup: dict[int, int]  # cumulative refused records per cgroup (any reason)
    seen: int  # cumulative events of filtered-in cgroups
    sampled: int  # cumulative events written to the ring


class _HashDump:
    """Reusable buffers to read a whole hash map with batch lookups and delete chosen keys."""

    def __init__(self, fd: int, key: np.dtype[np.void], capacity: int) -> None:
        self.fd, self.key = fd, key
        self.keys = np.zeros(capacity, key)
        self.vals = np.zeros(capacity, L.COUNT)

    def read(self) -> tuple[npt.NDArray[np.void], npt.NDArray[np.uint64]]:
        total, cap = 0, len(self.keys)
        out_batch, in_batch = ctypes.c_uint32(0), ctypes.c_uint32(0)
        first = True
        while total < cap:
            count = ctypes.c_uint32(cap - total)
            rc = lib().bpf_map_lookup_batch(
                self.fd,
                None if first else ctypes.byref(in_batch),
                ctypes.byref(out_batch),
                self.keys.ctypes.data + total * self.key.itemsize,
                self.vals.ctypes.data + total * 8,
                ctypes.byref(count),
                None,
            )
            total += count.value
            if rc == -errno.ENOENT:
                break
            check(rc, "bpf_map_lookup_batch")
            in_batch.value, first = out_batch.value, False
        # raw bytes (padding included: a structured copy may not carry it, and the kernel compares all of it)
        return self.keys[:total].view(np.dtype((np.void, self.key.itemsize))).copy(), self.vals[:total].copy()

    def delete(self, keys: npt.NDArray[np.void]) -> None:
        if len(keys) == 0:
            return
        buf = np.ascontiguousarray(keys)
        count = ctypes.c_uint32(len(buf))
        check(lib().bpf_map_delete_batch(self.fd, buf.ctypes.data, ctypes.byref(count), None), "bpf_map_delete_batch")


def _with_counts(keys: npt.NDArray[np.void], vals: npt.NDArray[np.uint64]) -> npt.NDArray[np.void]:
    dt = np.dtype([*((n, keys.dtype.fields[n][0]) for n in keys.dtype.names or ()), ("n", "<u8")])  # type: ignore[index]
    out = np.zeros(len(keys), dt)
    for n in keys.dtype.names or ():
        out[n] = keys[n]
    out["n"] = vals
    return out


class BpfProgram:
    """The loaded and attached object. Not thread-safe: one reader."""

    def __init__(
        self, path: Path = DEFAULT_OBJECT, *, sample_budget: int = 256, map_entries: int | None = None
    ) -> None:
        self.path = path
        self.sample_budget = sample_budget
        self.map_entries = map_entries
        self.epoch = 0
        self._obj: int | None = None
        self._link: int | None = None
        self._fds: dict[str, int] = {}
        self._ring: int | None = None
        self._pending: list[bytes] = []
        self._dumps: dict[str, _HashDump] = {}
        self._cb = SampleFn(self._on_sample)  # kept alive as long as the ring
        self._ncpu = possible_cpus()

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> None:
        if self._obj is not None:
            return
        if not self.path.is_file():
            msg = f"BPF object {self.path} not built (make -C services/collector/bpf, or scripts/bootstrap.sh)"
            raise BpfError(errno.ENOENT, msg)
        b = lib()
        self._obj = check_ptr(b.bpf_object__open_file(str(self.path).encode(), None), f"open {self.path}")
        try:
            self._open_maps(b)
            rc = b.bpf_object__load(self._obj)
            check(rc, "load" if rc == -errno.EPERM else "load (verifier log above, on stderr)")
            for name in (*_LAYOUT, L.MAP_SAMPLES):
                self._fds[name] = check(b.bpf_map__fd(self._map(name)), f"fd of {name}")
            prog = check_ptr(b.bpf_object__find_program_by_name(self._obj, L.PROGRAM.encode()), L.PROGRAM)
            self._ring = check_ptr(b.ring_buffer__new(self._fds[L.MAP_SAMPLES], self._cb, None, None), "ring")
            self._dumps = {
                name: _HashDump(self._fds[name], key, b.bpf_map__max_entries(self._map(name)))
                for name, key in ((L.MAP_COUNTS, L.COUNT_KEY), (L.MAP_NGRAM2, L.NGRAM_KEY), (L.MAP_NGRAM3, L.NGRAM_KEY))
            }
            self._write_config()
            self._link = check_ptr(b.bpf_program__attach(prog), f"attach {L.PROGRAM}")
        except BaseException:
            self.close()
            raise

    def _map(self, name: str) -> int:
        assert self._obj is not None
        return check_ptr(lib().bpf_object__find_map_by_name(self._obj, name.encode()), f"map {name}")

    def _open_maps(self, b: ctypes.CDLL) -> None:
        for name, (ks, vs) in _LAYOUT.items():
            m = self._map(name)
            if (b.bpf_map__key_size(m), b.bpf_map__value_size(m)) != (ks, vs):
                msg = f"{self.path}: map {name} has another layout than this loader (rebuild the object)"
                raise BpfError(errno.EPROTO, msg)
            if self.map_entries and name in (L.MAP_COUNTS, L.MAP_NGRAM2, L.MAP_NGRAM3):
                check(b.bpf_map__set_max_entries(m, self.map_entries), f"max_entries of {name}")

    def close(self) -> None:
        b = lib()
        if self._link is not None:
            b.bpf_link__destroy(self._link)
            self._link = None
        if self._ring is not None:
            b.ring_buffer__free(self._ring)
            self._ring = None
        if self._obj is not None:
            b.bpf_object__close(self._obj)
            self._obj = None
        self._fds.clear()
        self._dumps.clear()

    @property
    def attached(self) -> bool:
        return self._link is not None

    # -- configuration ---------------------------------------------------------------------
    def _update(self, name: str, key: object, value: object, flags: int = BPF_ANY) -> int:
        return int(lib().bpf_map_update_elem(self._fds[name], ctypes.byref(key), ctypes.byref(value), flags))  # type: ignore[arg-type]

    def _write_config(self) -> None:
        cfg = np.array([(self.epoch, self.sample_budget)], L.CONFIG)
        check(
            lib().bpf_map_update_elem(
                self._fds[L.MAP_CONFIG], ctypes.byref(ctypes.c_uint32(0)), cfg.ctypes.data, BPF_ANY
            ),
            "config",
        )

    def set_cheap(self, numbers: set[int]) -> None:
        """Syscall numbers left out of the no-cheap n-grams (``FeatureParams.cheap`` on this arch)."""
        for nr in range(L.MAX_NR):
            v = ctypes.c_uint32(1 if nr in numbers else 0)
            check(self._update(L.MAP_CHEAP, ctypes.c_uint32(nr), v), "cheap")

    def cgroups(self) -> set[int]:
        fd, out = self._fds[L.MAP_CGROUPS], set[int]()
        key, nxt = ctypes.c_uint64(), ctypes.c_uint64()
        rc = lib().bpf_map_get_next_key(fd, None, ctypes.byref(nxt))
        while rc == 0:
            out.add(nxt.value)
            key.value = nxt.value
            rc = lib().bpf_map_get_next_key(fd, ctypes.byref(key), ctypes.byref(nxt))
        return out

    def set_cgroups(self, ids: set[int]) -> tuple[int, int]:
        """Count exactly the cgroups ``ids`` from now on; returns (added, refused because the map is full)."""
        fd, have = self._fds[L.MAP_CGROUPS], self.cgroups()
        for cgid in have - ids:
            lib().bpf_map_delete_elem(fd, ctypes.byref(ctypes.c_uint64(cgid)))
        added = refused = 0
        zero = np.zeros(1, L.CGROUP_STATE)
        for cgid in ids - have:
            rc = lib().bpf_map_update_elem(fd, ctypes.byref(ctypes.c_uint64(cgid)), zero.ctypes.data, BPF_NOEXIST)
            if rc == 0:
                added += 1
            elif rc != -errno.EEXIST:
                refused += 1
        return added, refused

    # -- reading ---------------------------------------------------------------------------
    def _on_sample(self, _ctx: int | None, data: int | None, size: int) -> int:
        if data and size == L.SAMPLE.itemsize:
            self._pending.append(ctypes.string_at(data, size))
        return 0

    def drain_ring(self) -> int:
        """Move what the ring holds into this reader (call often enough that it never fills)."""
        if self._ring is None:
            return 0
        return check(lib().ring_buffer__consume(self._ring), "ring_buffer__consume")

    def _percpu_sum(self, name: str, n: int) -> list[int]:
        buf = np.zeros(self._ncpu, "<u8")
        out = []
        for i in range(n):
            check(lib().bpf_map_lookup_elem(self._fds[name], ctypes.byref(ctypes.c_uint32(i)), buf.ctypes.data), name)
            out.append(int(buf.sum()))
        return out

    def _cgroup_losses(self) -> dict[int, int]:
        fd, st, out = self._fds[L.MAP_CGROUPS], np.zeros(1, L.CGROUP_STATE), {}
        for cgid in self.cgroups():
            if lib().bpf_map_lookup_elem(fd, ctypes.byref(ctypes.c_uint64(cgid)), st.ctypes.data) == 0:
                out[cgid] = int(st["lost"][0])
        return out

    def collect(self) -> Collected:
        """Close the current generation and return what it holds (its keys are deleted from the kernel)."""
        old = self.epoch & 1
        self.epoch = (self.epoch + 1) & 0xFFFFFFFF
        self._write_config()
        time.sleep(GRACE_S)
        self.drain_ring()
        parts = {}
        for name, dump in self._dumps.items():
            raw_keys, vals = dump.read()
            mine = raw_keys.view(dump.key)["gen"] == old
            dump.delete(raw_keys[mine])
            parts[name] = _with_counts(raw_keys[mine].view(dump.key), vals[mine])
        raw = np.frombuffer(b"".join(self._pending), L.SAMPLE)
        in_gen = raw["gen"] == old
        samples, self._pending = raw[in_gen].copy(), [r.tobytes() for r in raw[~in_gen]]
        seen = self._percpu_sum(L.MAP_SEEN, L.SEEN_N)
        return Collected(
            counts=parts[L.MAP_COUNTS],
            ngram2=parts[L.MAP_NGRAM2],
            ngram3=parts[L.MAP_NGRAM3],
            samples=samples,
            lost=dict(zip(L.LOSS_REASONS, self._percpu_sum(L.MAP_LOSS, len(L.LOSS_REASONS)), strict=True)),
            lost_by_cgroup=self._cgroup_losses(),
            seen=seen[L.SEEN_EVENTS],
            sampled=seen[L.SEEN_SAMPLED],
        )
