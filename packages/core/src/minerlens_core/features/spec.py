"""What a feature vector is: the window policy, the parameters and the ordered feature names.

A ``FeatureSpec`` is stored in every model manifest. Its ``digest`` (sha256 over version,
vocabulary, window policy, parameters and names) changes whenever any of them does, so a model is
never fed vectors laid out differently from the ones it was trained on. Loading a spec (e.g. from a
manifest) recomputes names and digest and refuses a mismatch.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from minerlens_core.features.vocabulary import VOCAB_VERSION, VOCABULARY, vocab_digest

FeatureVersion = Literal["1", "2"]
FEATURE_VERSION: FeatureVersion = "2"
"""Version 2 adds the resource (``res.*``) and I/O-by-fd-kind (``io.*``) groups; version 1 specs (models
trained before them) are still served with their own layout."""

DEFAULT_CHEAP: tuple[str, ...] = (
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "getcpu",
    "getegid",
    "geteuid",
    "getgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getresgid",
    "getresuid",
    "gettid",
    "gettimeofday",
    "getuid",
    "nanosleep",
    "time",
)
"""Side-effect-free identity/time/sleep calls any process can issue at will to dilute its profile.

``sched_yield`` is deliberately absent: spinning miner threads yield, it is signal. Reads/writes of
``/dev/null`` are just as free to inject but cannot be told apart from real I/O by name.
"""

DEFAULT_RATES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("futex", ("futex",)),
    ("sched_yield", ("sched_yield",)),
    ("mmap", ("mmap",)),
    ("munmap", ("munmap",)),
    ("madvise", ("madvise",)),
    ("read", ("read",)),
    ("write", ("write",)),
    ("epoll_wait", ("epoll_wait", "epoll_pwait", "epoll_pwait2")),
    ("sleep", ("nanosleep", "clock_nanosleep")),
)
"""``rate.<feature>``: calls per second of the named syscalls (summed: arm64 has no ``epoll_wait``)."""

STAT_NAMES = (
    "log_count",
    "distinct",
    "distinct_nc",
    "entropy",
    "entropy_nc",
    "longest_run",
    "longest_run_nc",
    "top_share",
    "top_share_nc",
)
THREAD_NAMES = ("count", "busiest_share", "dominated", "dominated_share")
TIME_NAMES = ("time.has_time", "rate.syscalls_per_s", "rate.nocheap_per_s", "iat.median_us", "iat.p90_us")
RES_NAMES = (
    "has",
    "cpu_cores",
    "throttled_cores",
    "threads",
    "running",
    "running_share",
    "log_syscalls_per_cpu_s",
    "log_nocheap_per_cpu_s",
    "log_memory_mb",
    "log_hugetlb_mb",
    "sockets_inet",
    "sockets_other",
    "files",
    "pipes",
    "anon",
    "processes",
)
"""``res.*``: what the pod (or process) used over the window, from the collector's resource samples."""
IO_NAMES = (
    "has_fd_kind",
    "socket_share",
    "inet_share",
    "file_share",
    "ipc_share",
    "socket_per_s",
    "inet_per_s",
    "file_per_s",
)
"""``io.*``: socket vs file vs IPC I/O, from fd-kind tags (where known) and calls that only fit one kind."""


class WindowPolicy(BaseModel):
    """How a (pod, container) syscall stream is cut into windows.

    ``count``: a window every ``stride`` syscalls holding ``size`` syscalls (tumbling when
    stride == size, the default); works for order-only traces. The trailing partial window is
    emitted (``complete=False``) only at end of trace / flush and only if it holds >= ``min_fill``
    syscalls (default size // 2) not already covered by an earlier window.
    ``time``: tumbling ``seconds``-long slots aligned to the Unix epoch; needs timestamps. A slot
    is emitted once a later event (or ``WindowBuilder.advance``) closes it, if it holds >= ``min_fill``
    syscalls (default 1); slots without syscalls produce no window.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["count", "time"] = "count"
    size: int | None = Field(default=None, ge=1)
    stride: int | None = Field(default=None, ge=1)
    seconds: float | None = Field(default=None, gt=0)
    min_fill: int | None = Field(default=None, ge=1)
    per_process: bool = False
    """after each window of a stream with 2+ processes, one window per process (the same slot, its calls)"""
    max_processes: int = Field(default=8, ge=1, le=64)
    """per-process windows per stream window at most (the busiest by CPU, then by calls)"""
    min_cpu_cores: float = Field(default=0.05, gt=0, le=1024)
    """a time slot in which the pod (or a process) used this much CPU is a window even without syscalls"""

    @model_validator(mode="before")
    @classmethod
    def _canonical(cls, data: Any) -> Any:
        """Fill defaults per kind so equal policies serialise (and hash) identically."""
        if not isinstance(data, dict):
            return data
        d = dict(data)
        if d.get("kind", "count") == "count":
            if d.get("seconds") is not None:
                msg = "count windows take size/stride, not seconds"
                raise ValueError(msg)
            d["size"] = d.get("size") or 1000
            d["stride"] = d.get("stride") or d["size"]
            d["min_fill"] = d.get("min_fill") or max(1, d["size"] // 2)
        else:
            if d.get("seconds") is None or d.get("size") is not None or d.get("stride") is not None:
                msg = "time windows take seconds (and min_fill), not size/stride"
                raise ValueError(msg)
            d["min_fill"] = d.get("min_fill") or 1
        return d

    @classmethod
    def count(cls, size: int = 1000, stride: int | None = None, min_fill: int | None = None) -> WindowPolicy:
        return cls(kind="count", size=size, stride=stride, min_fill=min_fill)

    @classmethod
    def time(cls, seconds: float, min_fill: int | None = None) -> WindowPolicy:
        return cls(kind="time", seconds=seconds, min_fill=min_fill)

    @property
    def slot_ns(self) -> int:
        return round((self.seconds or 0.0) * 1e9)


class FeatureParams(BaseModel):
    """Tunable parameters of the vector (all part of the digest)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    buckets: int = Field(default=128, ge=1, le=1 << 16, description="hash buckets per n-gram group")
    cheap: tuple[str, ...] = DEFAULT_CHEAP
    dominated_share: float = Field(default=0.8, gt=0, le=1)
    thread_min_events: int = Field(default=8, ge=1, description="no-cheap calls a thread needs to count as dominated")
    rates: tuple[tuple[str, tuple[str, ...]], ...] = DEFAULT_RATES

    @model_validator(mode="after")
    def _known_names(self) -> Self:
        unknown = {n for n in self.cheap + tuple(x for _, g in self.rates for x in g) if n not in VOCABULARY}
        if unknown:
            msg = f"not in the syscall vocabulary: {sorted(unknown)}"
            raise ValueError(msg)
        return self


_POLICY_V1_DEFAULTS = {"per_process": False, "max_processes": 8, "min_cpu_cores": 0.05}
"""Policy fields added after version 1: left out of the digest at their defaults, so older specs keep theirs."""


def feature_groups(params: FeatureParams, version: str = FEATURE_VERSION) -> list[tuple[str, list[str]]]:
    """The ordered groups of the vector and their feature names (the layout ``vectorize`` follows)."""
    cheap = set(params.cheap)
    b = range(params.buckets)
    v2 = [("res", [f"res.{n}" for n in RES_NAMES]), ("io", [f"io.{n}" for n in IO_NAMES])] if version != "1" else []
    return [
        ("freq", [f"freq.{n}" for n in VOCABULARY]),
        ("freq_nocheap", [f"freq_nocheap.{n}" for n in VOCABULARY if n not in cheap]),
        ("cheap", ["cheap_share"]),
        ("ngram2", [f"ngram2.{i}" for i in b]),
        ("ngram2_nc", [f"ngram2_nc.{i}" for i in b]),
        ("ngram3_nc", [f"ngram3_nc.{i}" for i in b]),
        ("stat", [f"stat.{n}" for n in STAT_NAMES]),
        ("thread", [f"thread.{n}" for n in THREAD_NAMES]),
        ("time", [*TIME_NAMES, *(f"rate.{n}" for n, _ in params.rates)]),
        *v2,
    ]


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class FeatureSpec(BaseModel):
    """The contract between the feature library and a model: store it, compare ``digest``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: FeatureVersion = FEATURE_VERSION
    vocab_version: str = VOCAB_VERSION
    vocab_digest: str = Field(default_factory=vocab_digest)
    window: WindowPolicy = Field(default_factory=WindowPolicy.count)
    params: FeatureParams = Field(default_factory=FeatureParams)
    names: tuple[str, ...] = ()
    digest: str = ""

    @model_validator(mode="before")
    @classmethod
    def _derive(cls, data: Any) -> Any:
        """Compute names and digest when absent; when given (a loaded manifest) they must match."""
        if not isinstance(data, dict):
            return data
        d = dict(data)
        given_names, given_digest = d.pop("names", None), d.pop("digest", None)
        plain = cls.model_construct(**d)
        window = WindowPolicy.model_validate(plain.window)
        params = FeatureParams.model_validate(plain.params)
        names = tuple(n for _, g in feature_groups(params, plain.version) for n in g)
        policy = {
            k: v
            for k, v in window.model_dump(mode="json").items()
            if k not in _POLICY_V1_DEFAULTS or v != _POLICY_V1_DEFAULTS[k]
        }
        body = {
            "version": plain.version,
            "vocab_version": plain.vocab_version,
            "vocab_digest": plain.vocab_digest,
            "window": policy,
            "params": params.model_dump(mode="json"),
            "names": names,
        }
        digest = _digest(body)
        if given_names is not None and tuple(given_names) != names:
            msg = "feature names differ from what this feature library produces for these parameters"
            raise ValueError(msg)
        if given_digest is not None and given_digest != digest:
            msg = f"feature spec digest {given_digest} != {digest} computed by this feature library"
            raise ValueError(msg)
        return {**body, "window": window, "digest": digest}

    @model_validator(mode="after")
    def _current_vocab(self) -> Self:
        if self.vocab_version != VOCAB_VERSION or self.vocab_digest != vocab_digest():
            have = f"{self.vocab_version}/{self.vocab_digest[:12]}"
            msg = f"spec uses syscall vocabulary {have}, this library has {VOCAB_VERSION}/{vocab_digest()[:12]}"
            raise ValueError(msg)
        return self

    @classmethod
    def default(cls) -> FeatureSpec:
        return _DEFAULT

    @classmethod
    def build(
        cls,
        window: WindowPolicy | None = None,
        params: FeatureParams | None = None,
        version: FeatureVersion = FEATURE_VERSION,
    ) -> FeatureSpec:
        return cls(window=window or WindowPolicy.count(), params=params or FeatureParams(), version=version)

    @property
    def dim(self) -> int:
        return len(self.names)


_DEFAULT = FeatureSpec()
