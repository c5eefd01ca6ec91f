"""Windows and features in operator terms: the only wording of feature names in minerlens.

The scorer's inline reasons and the explanations (SHAP, LIME, autoencoder) both say things through
this module, so one feature reads the same in an alert and in an explanation.

* ``behaviour_summary`` (``WindowDescriber.summary``): one sentence with quantities from a window's
  feature vector: cores busy, syscalls/s and per CPU-second, threads and runnable threads, memory and
  huge pages, open sockets and socket/file I/O, the top syscalls. A value that is NaN or absent from
  the spec is said to be unknown, never guessed; version-1 specs (no ``res.*``/``io.*``) and count
  windows without timestamps (no rates) are described with what they have.
* ``FeatureWording``: label, value, benign range and one sentence for every feature name of every
  spec version ("sched_yield is 41% of calls (benign pods: 0%)").
* ``WindowIds``: the window's own syscalls (or, without them, its ``freq.*`` values) name the
  pairs/triples behind a hashed n-gram feature; a bare bucket number is never a reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from minerlens_core.features.ngrams import ngram_buckets
from minerlens_core.features.spec import FeatureParams, FeatureSpec
from minerlens_core.features.vectorize import cheap_mask
from minerlens_core.features.vocabulary import VOCABULARY
from minerlens_core.schemas.windows import ProcessRef
from minerlens_core.syscalls.io import FD_DATA_SYSCALLS, FILE_ONLY, SOCKET_ONLY

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
NGRAM_GROUPS = {"ngram2": 2, "ngram2_nc": 2, "ngram3_nc": 3}
SUMMARY_BENIGN = ("res.log_syscalls_per_cpu_s", "rate.syscalls_per_s")
"""Features whose benign range the summary quotes (pass them as ``benign`` to ``WindowDescriber``)."""
DASH = "-"
"""Between the ends of a range ("5-30%"): ASCII, like every other character of the wording but µ and →."""
_MAX_LOG = 15.0  # log10 features above this are hostile or broken: shown as 10^15 at most
_NAME_INDEX = {n: i for i, n in enumerate(VOCABULARY)}

# ---- numbers -------------------------------------------------------------------------------------


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def num(v: float) -> str:
    """12345.6 -> "12,346", 21.4 -> "21", 2.46 -> "2.5", 0.25 -> "0.25", 0.0004 -> "< 0.001"."""
    if math.isnan(v):
        return "unknown"
    a = abs(v)
    if math.isinf(v) or a >= 100 or float(v).is_integer():
        return f"{v:,.0f}"
    if a >= 9.95:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.1f}"
    if a < 0.001:
        return "< 0.001"
    return f"{v:.2g}"


def share(v: float) -> str:
    """0.41 -> "41%", 0.025 -> "2.5%", 0.004 -> "0.4%", 0.0002 -> "< 0.1%", 0 -> "0%"."""
    if math.isnan(v):
        return "unknown"
    p = 100.0 * v
    if p <= 0 or math.isinf(p):
        return "0%" if p == 0 else f"{p:.0f}%"
    if p < 0.1:
        return "< 0.1%"
    if p < 9.95:
        return f"{p:.1f}".removesuffix(".0") + "%"
    return f"{p:.0f}%"


def cores(v: float) -> str:
    """2.0 -> "2.0", 0.25 -> "0.25", 0.6 -> "0.6", 0.001 -> "< 0.01", 12.3 -> "12"."""
    if math.isnan(v):
        return "unknown"
    if v == 0 or math.isinf(v):
        return f"{v:.0f}"
    if 0 < v < 0.005:
        return "< 0.01"
    if abs(v) < 0.995:
        return f"{v:.2g}"
    if abs(v) < 9.95:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def megabytes(v: float) -> str:
    if math.isnan(v):
        return "unknown"
    if v >= 1024 and math.isfinite(v):
        return f"{v / 1024:.1f} GB"
    return f"{num(v)} MB"


def _plural(n: float, one: str, many: str) -> str:
    return f"{num(n)} {one if n == 1 else many}"


def _count(v: float) -> float:
    """A count read back from a float32 feature (``10**log10(1 + n) - 1`` is n only up to rounding)."""
    return float(round(v)) if abs(v) < 1e15 else v


def _identity(v: float) -> float:
    return v


def from_log(v: float) -> float:
    """``10**v - 1`` of a ``log10(1 + x)`` feature (clipped: hostile vectors must not overflow)."""
    if math.isnan(v):
        return v
    return max(0.0, float(10.0 ** min(v, _MAX_LOG)) - 1.0)


@dataclass(frozen=True)
class Unit:
    """How the values of a feature are written: number format, suffix, transform of the stored value."""

    number: Callable[[float], str] = num
    suffix: str = ""
    transform: Callable[[float], float] = _identity
    is_share: bool = False
    flag: bool = False

    def text(self, v: float | None) -> str:
        if v is None or math.isnan(v):
            return "unknown"
        if self.flag:
            return "yes" if v else "no"
        if self.is_share:
            return share(v)
        return self.number(self.transform(v)) + self.suffix

    def range(self, lo: float, hi: float) -> str:
        """The benign p05-p95 range ("5-30%", "< 1%", "500-20,000 syscalls/s")."""
        if self.is_share:
            if hi <= 0:
                return "0%"
            if hi < 0.01:
                return "< 1%"
            pa, pb = round(100 * lo), round(100 * hi)
            return share(hi) if pa == pb else f"{pa}{DASH}{pb}%"
        a, b = self.number(self.transform(lo)), self.number(self.transform(hi))
        if a == b:
            return a + self.suffix
        head, _, unit = a.rpartition(" ")
        if head and not unit[:1].isdigit() and b.endswith(f" {unit}"):
            a = head  # "9-99 MB", not "9 MB-99 MB"
        return f"{a}{DASH}{b}{self.suffix}"


SHARE = Unit(is_share=True)
FLAG = Unit(flag=True)
COUNT = Unit()
PER_S = Unit(suffix="/s")
LOG_COUNT = Unit(transform=from_log)
CORES = Unit(number=cores, suffix=" cores")
LOG_MB = Unit(number=megabytes, transform=from_log)
MICROS = Unit(suffix=" µs")
BITS = Unit(number=lambda v: f"{v:.2f}", suffix=" bits")


def is_share(name: str) -> bool:
    """Features that are fractions in [0, 1] (written as percentages)."""
    return FeatureWording.default().wording(name).unit.is_share


# ---- wording of single features -----------------------------------------------------------------


@dataclass(frozen=True)
class Wording:
    """How one feature is said: ``label`` (a noun phrase) and ``sentence`` with ``{value}`` (and ``{top}``)."""

    label: str
    sentence: str
    unit: Unit = COUNT
    benign: bool = True
    """compare with benign pods (False: flags such as ``time.has_time``, never a reason)"""


_STAT = {
    "log_count": Wording("syscalls in the window", "{value} syscalls in the window", LOG_COUNT),
    "distinct": Wording("distinct syscalls", "{value} distinct syscalls"),
    "distinct_nc": Wording("distinct non-trivial syscalls", "{value} distinct non-trivial syscalls"),
    "entropy": Wording("syscall entropy", "syscall entropy is {value} (low = repetitive)", BITS),
    "entropy_nc": Wording(
        "non-trivial syscall entropy", "non-trivial syscall entropy is {value} (low = repetitive)", BITS
    ),
    "longest_run": Wording(
        "longest run of one repeated syscall", "the longest run of one repeated syscall is {value} of calls", SHARE
    ),
    "longest_run_nc": Wording(
        "longest run of one repeated non-trivial syscall",
        "the longest run of one repeated non-trivial syscall is {value} of non-trivial calls",
        SHARE,
    ),
    "top_share": Wording(
        "share of the most frequent syscall", "the most frequent syscall{top} is {value} of calls", SHARE
    ),
    "top_share_nc": Wording(
        "share of the most frequent non-trivial syscall",
        "the most frequent non-trivial syscall{top} is {value} of non-trivial calls",
        SHARE,
    ),
}

_FIXED = {
    "cheap_share": Wording(
        "share of trivial calls (getpid, clock_gettime, sleeps, ...)",
        "trivial calls (getpid, clock_gettime, sleeps, ...) are {value} of calls",
        SHARE,
    ),
    "time.has_time": Wording("timestamps known", "timestamps known: {value}", FLAG, benign=False),
    "rate.syscalls_per_s": Wording("syscalls per second", "{value}", Unit(suffix=" syscalls/s")),
    "rate.nocheap_per_s": Wording("non-trivial syscalls per second", "{value}", Unit(suffix=" non-trivial syscalls/s")),
    "iat.median_us": Wording("median gap between syscalls", "the median gap between syscalls is {value}", MICROS),
    "iat.p90_us": Wording(
        "90th-percentile gap between syscalls", "90% of gaps between syscalls are under {value}", MICROS
    ),
    "res.has": Wording("resource samples known", "resource samples known: {value}", FLAG, benign=False),
    "res.cpu_cores": Wording("CPU cores busy", "{value} busy", CORES),
    "res.throttled_cores": Wording("CPU throttled by the quota", "throttled by the CPU quota for {value}", CORES),
    "res.threads": Wording("threads", "{value} threads"),
    "res.running": Wording("runnable threads (mean)", "{value} threads runnable on average"),
    "res.running_share": Wording("share of threads runnable", "{value} of threads runnable on average", SHARE),
    "res.log_syscalls_per_cpu_s": Wording(
        "syscalls per CPU-second", "{value}", Unit(suffix=" syscalls per CPU-second", transform=from_log)
    ),
    "res.log_nocheap_per_cpu_s": Wording(
        "non-trivial syscalls per CPU-second",
        "{value}",
        Unit(suffix=" non-trivial syscalls per CPU-second", transform=from_log),
    ),
    "res.log_memory_mb": Wording("memory", "{value} of memory", LOG_MB),
    "res.log_hugetlb_mb": Wording("memory in huge pages", "{value} in huge pages", LOG_MB),
    "res.sockets_inet": Wording("TCP/UDP sockets open", "{value} TCP/UDP sockets open"),
    "res.sockets_other": Wording("other sockets open (unix, netlink)", "{value} other sockets open (unix, netlink)"),
    "res.files": Wording("files open", "{value} files open"),
    "res.pipes": Wording("pipes open", "{value} pipes open"),
    "res.anon": Wording("eventfd/epoll/timer fds open", "{value} eventfd/epoll/timer fds open"),
    "res.processes": Wording("processes", "{value} processes"),
    "io.has_fd_kind": Wording("fd kinds known", "fd kinds of I/O calls known: {value}", FLAG, benign=False),
    "io.socket_share": Wording("share of socket I/O", "socket I/O is {value} of non-trivial calls", SHARE),
    "io.inet_share": Wording("share of TCP/UDP I/O", "TCP/UDP socket I/O is {value} of non-trivial calls", SHARE),
    "io.file_share": Wording("share of file I/O", "file I/O is {value} of non-trivial calls", SHARE),
    "io.ipc_share": Wording(
        "share of pipe/eventfd/device I/O", "pipe, eventfd and device I/O is {value} of non-trivial calls", SHARE
    ),
    "io.socket_per_s": Wording("socket I/O calls per second", "{value}", Unit(suffix=" socket I/O calls/s")),
    "io.inet_per_s": Wording("TCP/UDP I/O calls per second", "{value}", Unit(suffix=" TCP/UDP I/O calls/s")),
    "io.file_per_s": Wording("file I/O calls per second", "{value}", Unit(suffix=" file I/O calls/s")),
}


class FeatureWording:
    """Labels, values, benign ranges and sentences for the features of one set of ``FeatureParams``."""

    def __init__(self, params: FeatureParams | FeatureSpec | None = None) -> None:
        p = params.params if isinstance(params, FeatureSpec) else params or FeatureParams()
        self.params = p
        self._rates = dict(p.rates)
        dom = f"> {p.dominated_share:.0%} of their non-trivial calls in one syscall"
        self._thread = {
            "count": Wording("threads making calls", "{value} threads made calls"),
            "busiest_share": Wording(
                "share of calls made by the busiest thread", "the busiest thread made {value} of the calls", SHARE
            ),
            "dominated": Wording("threads stuck in one syscall", f"{{value}} threads spend {dom}"),
            "dominated_share": Wording(
                "share of threads stuck in one syscall", f"{{value}} of threads spend {dom}", SHARE
            ),
        }
        self._cache: dict[str, Wording] = {}

    @staticmethod
    def default() -> FeatureWording:
        return _default_wording()

    def wording(self, name: str) -> Wording:
        w = self._cache.get(name)
        if w is None:
            w = self._cache[name] = self._wording(name)
        return w

    def _wording(self, name: str) -> Wording:
        group, _, rest = name.partition(".")
        if name in _FIXED:
            return _FIXED[name]
        if group == "freq":
            return Wording(f"{rest} share of calls", f"{rest} is {{value}} of calls", SHARE)
        if group == "freq_nocheap":
            return Wording(f"{rest} share of non-trivial calls", f"{rest} is {{value}} of non-trivial calls", SHARE)
        if group in NGRAM_GROUPS:
            what = "pairs" if NGRAM_GROUPS[group] == 2 else "triples"
            nc = " non-trivial" if group.endswith("_nc") else ""
            return Wording(
                f"consecutive{nc} syscall {what} in hash bucket {rest}",
                f"of consecutive{nc} syscall {what}",
                SHARE,
            )
        if group == "stat" and rest in _STAT:
            return _STAT[rest]
        if group == "thread" and rest in self._thread:
            return self._thread[rest]
        if group == "rate" and rest in self._rates:
            calls = "/".join(self._rates[rest])
            return Wording(f"{calls} calls per second", f"{calls} at {{value}}", Unit(suffix=" calls/s"))
        return Wording(name, f"{name} = {{value}}")

    def label(self, name: str, context: WindowIds | None = None) -> str:
        """A noun phrase for the feature; n-gram buckets are named by the window's pairs when known."""
        group, _, rest = name.partition(".")
        if context is not None and group in NGRAM_GROUPS and rest.isdigit():
            members, _ = context.ngram_members(group, int(rest))
            if members:
                what = "pairs" if NGRAM_GROUPS[group] == 2 else "triples"
                return f"{what} like {', '.join(members)} (hash bucket {rest})"
        return self.wording(name).label

    def value(self, name: str, v: float | None) -> str:
        """The value in the feature's unit ("41%", "2.0 cores", "256 MB", "unknown")."""
        return self.wording(name).unit.text(v)

    def benign_range(self, name: str, p05: float | None, median: float | None = None, p95: float | None = None) -> str:
        """ "benign pods: 5-30%" (the 5th-95th percentile of benign training windows), "" when unknown."""
        w = self.wording(name)
        lo = p05 if _finite(p05) else median
        if not w.benign or lo is None or p95 is None or not _finite(lo) or not _finite(p95):
            return ""
        return f"benign pods: {w.unit.range(float(lo), float(p95))}"

    def sentence(
        self,
        name: str,
        value: float | None,
        p05: float | None = None,
        median: float | None = None,
        p95: float | None = None,
        context: WindowIds | None = None,
    ) -> str:
        """One sentence: the value in operator terms, then the benign range in parentheses."""
        w = self.wording(name)
        v = None if value is None or math.isnan(value) else float(value)
        group, _, rest = name.partition(".")
        bench = self.benign_range(name, p05, median, p95)
        if group in NGRAM_GROUPS:
            text = self._ngram_sentence(group, rest, v, context)
        elif v is None:
            text = f"{w.label}: unknown"
        else:
            top = ""
            if name in ("stat.top_share", "stat.top_share_nc") and context is not None:
                t = context.top_syscall(nocheap=name.endswith("_nc"))
                top = f" ({t})" if t else ""
            text = w.sentence.format(value=w.unit.text(v), top=top)
        return f"{text} ({bench})" if bench else text

    def _ngram_sentence(self, group: str, bucket: str, v: float | None, context: WindowIds | None) -> str:
        what = "pairs" if NGRAM_GROUPS[group] == 2 else "triples"
        tail = self.wording(f"{group}.{bucket}").sentence
        shown = share(v) if v is not None else "an unknown share"
        members, exact = context.ngram_members(group, int(bucket)) if context and bucket.isdigit() else ([], False)
        if members:
            how = "" if exact else " (guessed from the window's syscall mix)"
            return f"syscall {what} like {', '.join(members)}{how} are {shown} {tail}"
        return f"one hashed group of syscall {what} is {shown} {tail} (the window's calls are needed to name it)"


@lru_cache(maxsize=1)
def _default_wording() -> FeatureWording:
    return FeatureWording()


# ---- the window's own syscalls -------------------------------------------------------------------


class WindowIds:
    """What names the syscalls behind a feature: the window's ids and/or its feature vector.

    ``ids`` are the window's syscall ids (``Window.ids``) or its non-cheap sequence (``window_sequence`` /
    ``FeatureWindow.sequence``; then full-sequence pair buckets are named from non-cheap calls, which
    is approximate). ``vector`` (laid out as ``names``, by default the spec's) lets n-gram buckets be
    named without ids: the pairs/triples of the window's most frequent syscalls that hash to the bucket.
    """

    def __init__(
        self,
        ids: npt.ArrayLike | None,
        spec: FeatureSpec | FeatureParams | None = None,
        max_names: int = 2,
        *,
        vector: npt.ArrayLike | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        params = spec.params if isinstance(spec, FeatureSpec) else spec or FeatureParams()
        self.params = params
        self.buckets = params.buckets
        self.max_names = max_names
        self.full: I64 = _valid_ids(ids)
        self.nocheap: I64 = self.full[~cheap_mask(params)[self.full]]
        self._members: dict[tuple[str, int], tuple[list[str], bool]] = {}
        self._hashed: dict[tuple[int, bool], I64] = {}
        self._ranked: dict[bool, tuple[tuple[int, float], ...]] = {}
        self._vector = None if vector is None else np.asarray(vector, dtype=np.float64).ravel()
        self._names = tuple(names) if names is not None else (spec.names if isinstance(spec, FeatureSpec) else ())

    def _shares(self, nocheap: bool) -> tuple[tuple[int, float], ...]:
        """(syscall id, share) of the window's syscalls from its ``freq.*`` (``freq_nocheap.*``) values, largest
        first; empty without a vector."""
        got = self._ranked.get(nocheap)
        if got is None:
            got = ()
            x = self._vector
            if x is not None and len(self._names) == len(x):
                cols, sids = _freq_columns(self._names)[int(nocheap)]
                vals = x[cols]
                keep = np.flatnonzero(np.isfinite(vals) & (vals > 0))
                order = keep[np.argsort(-vals[keep], kind="stable")]
                got = tuple(zip(sids[order].tolist(), vals[order].tolist(), strict=True))
            self._ranked[nocheap] = got
        return got

    def ngram_members(self, group: str, bucket: int) -> tuple[list[str], bool]:
        """(the pairs/triples behind ``bucket`` of ``group``, True when taken from the window's own calls)."""
        key = (group, bucket)
        got = self._members.get(key)
        if got is None:
            got = self._members[key] = self._find(group, bucket)
        return got

    def _find(self, group: str, bucket: int) -> tuple[list[str], bool]:
        n = NGRAM_GROUPS.get(group)
        if n is None:
            return [], False
        nocheap = group.endswith("_nc")
        seq = self.nocheap if nocheap else self.full
        if len(seq) >= n:
            if (n, nocheap) not in self._hashed:
                self._hashed[(n, nocheap)] = ngram_buckets(seq, n, self.buckets)
            hits = np.flatnonzero(self._hashed[(n, nocheap)] == bucket)
            if len(hits):
                keys = np.zeros(len(hits), np.int64)
                for k in range(n):  # one integer per n-gram: ids in base len(VOCABULARY)
                    keys = keys * len(VOCABULARY) + seq[hits + k]
                _, first, counts = np.unique(keys, return_index=True, return_counts=True)
                top = np.lexsort((first, -counts))[: self.max_names]  # most frequent, then first seen
                return [_arrow(seq[hits[first[t]] : hits[first[t]] + n].tolist()) for t in top.tolist()], True
        ranked = self._shares(nocheap) or self._shares(False)
        if not ranked:
            return [], False
        return _likely_members(ranked, n, bucket, self.buckets)[: self.max_names], False

    def top_syscall(self, nocheap: bool) -> str:
        seq = self.nocheap if nocheap else self.full
        if len(seq):
            return VOCABULARY[int(np.bincount(seq).argmax())]
        shares = self._shares(nocheap)
        return VOCABULARY[shares[0][0]] if shares else ""


def _valid_ids(ids: npt.ArrayLike | None) -> I64:
    """Vocabulary ids of ``ids``; anything else (out of range, not a number) is dropped."""
    try:
        arr = np.asarray([] if ids is None else ids).ravel()
        if arr.dtype.kind not in "iu":
            arr = np.asarray(arr, dtype=np.float64)
            arr = arr[np.isfinite(arr) & (np.abs(arr) < 1 << 31)]
    except (TypeError, ValueError):
        return np.zeros(0, np.int64)
    full = arr.astype(np.int64)
    out: I64 = full[(full >= 0) & (full < len(VOCABULARY))]
    return out


@lru_cache(maxsize=16)
def _freq_columns(names: tuple[str, ...]) -> tuple[tuple[I64, I64], tuple[I64, I64]]:
    """(columns, syscall ids) of ``freq.*`` and of ``freq_nocheap.*`` in a layout of feature names."""
    out = []
    for prefix in ("freq.", "freq_nocheap."):
        found = [(j, _NAME_INDEX.get(n[len(prefix) :])) for j, n in enumerate(names) if n.startswith(prefix)]
        pairs = [(j, sid) for j, sid in found if sid is not None]
        out.append((np.array([j for j, _ in pairs], np.int64), np.array([s for _, s in pairs], np.int64)))
    return out[0], out[1]


def _arrow(ids: Sequence[int]) -> str:
    return "→".join(VOCABULARY[i] for i in ids)


def _likely_members(shares: tuple[tuple[int, float], ...], n: int, bucket: int, buckets: int) -> list[str]:
    """Pairs/triples of the window's most frequent syscalls hashing to ``bucket``, likeliest first."""
    ids, weight, hashed = _candidates(shares[: 24 if n == 2 else 12], n, buckets)
    hit = np.flatnonzero(hashed == bucket)
    order = hit[np.argsort(-weight[hit], kind="stable")]
    return [_arrow(ids[h].tolist()) for h in order.tolist()]


@lru_cache(maxsize=64)
def _candidates(shares: tuple[tuple[int, float], ...], n: int, buckets: int) -> tuple[I64, F64, I64]:
    """Every n-gram of the syscalls in ``shares`` (the window's top ones): ids, share product, bucket."""
    top = shares
    sids = np.array([s for s, _ in top], dtype=np.int64)
    w = np.array([v for _, v in top], dtype=np.float64)
    grid = np.indices((len(top),) * n).reshape(n, -1).T
    ids = sids[grid]
    with np.errstate(over="ignore"):  # shares of a hostile vector may be huge: they only rank
        weight = w[grid].prod(axis=1)
    return ids, weight, ngram_buckets(ids.ravel(), n, buckets)[::n]


# ---- one sentence per window ---------------------------------------------------------------------


@dataclass
class _Facts:
    """Feature values of one window by name (NaN: unknown or not in the spec)."""

    x: F64
    index: Mapping[str, int]

    def __call__(self, name: str) -> float:
        i = self.index.get(name)
        return float(self.x[i]) if i is not None else math.nan

    def has(self, name: str) -> bool:
        return name in self.index


class WindowDescriber:
    """Behaviour sentences for vectors laid out as ``names`` (build once per spec, reuse per window).

    ``benign`` maps ``SUMMARY_BENIGN`` feature names to their benign (p05, p95), e.g. from an artifact's
    ``background.npz``; the summary then compares the syscall rate per CPU-second with benign pods.
    """

    def __init__(
        self,
        names: Sequence[str],
        params: FeatureParams | FeatureSpec | None = None,
        benign: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        self.names = tuple(names)
        self.wording = FeatureWording(params)
        self.params = self.wording.params
        self._index = {n: i for i, n in enumerate(self.names)}
        self.benign = dict(benign or {})
        freq = [(i, n[5:]) for i, n in enumerate(self.names) if n.startswith("freq.")]
        self._freq_cols = np.array([i for i, _ in freq], dtype=np.int64)
        self._freq_names = [s for _, s in freq]
        self._ambiguous = [f"freq.{c}" for c in sorted(FD_DATA_SYSCALLS - SOCKET_ONLY - FILE_ONLY)]
        """fd I/O calls whose name says neither socket nor file (read, write, ...)"""

    def summary(
        self,
        x: npt.ArrayLike,
        *,
        ids: npt.ArrayLike | None = None,
        process: ProcessRef | None = None,
        scope: str = "stream",
    ) -> str:
        """One sentence on what the window's pod (or process) did, with quantities."""
        v = np.asarray(x, dtype=np.float64).ravel()
        if len(v) != len(self.names):
            msg = f"a vector of {len(v)} values for {len(self.names)} feature names"
            raise ValueError(msg)
        f = _Facts(v, self._index)
        res = f.has("res.has") and f("res.has") == 1.0
        parts = [self._activity(f, res)]
        parts += [p for p in (self._threads(f, res), self._memory(f, res), self._io(f, res)) if p]
        unknown = [] if res else ["CPU", "memory", "open sockets"]
        if not f.has("io.socket_share"):
            unknown.append("socket vs file I/O")
        if unknown:
            why = "no resource samples" if f.has("res.has") and not res else "not measured"
            listed = ", ".join(unknown[:-1]) + " and " + unknown[-1] if len(unknown) > 1 else unknown[0]
            parts.append(f"{listed} unknown ({why})")
        top = self._top_syscalls(v, ids)
        if top:
            parts.append(f"top syscalls: {top}")
        text = "; ".join(parts) + "."
        if process is not None:
            who = _process_text(process)
            if scope == "process":
                return f"Process {who}: {text}"
            text = f"{text[:-1]}; busiest process {who}."
        return text[0].upper() + text[1:]

    # --- clauses ----------------------------------------------------------------------------------

    def _activity(self, f: _Facts, res: bool) -> str:
        n = _count(from_log(f("stat.log_count")))
        rate = f("rate.syscalls_per_s")
        cpu = f("res.cpu_cores") if res else math.nan
        if math.isnan(n) and math.isnan(rate):
            calls = "syscalls unknown"
        elif n == 0 or (math.isnan(n) and rate == 0):
            calls = "no syscalls"
        elif math.isfinite(rate):
            shown = num(rate)
            calls = f"{shown} {'syscall' if shown == '1' else 'syscalls'}/s" + self._rate_context(f, cpu, rate)
        else:
            calls = f"{_plural(n, 'syscall', 'syscalls')} (no timestamps, so no rates)"
        if not res:
            return calls
        if math.isnan(cpu):
            return f"CPU unknown (too few resource samples) while making {calls}"
        busy = f"{cores(cpu)} cores busy"
        thr = f("res.throttled_cores")
        if _finite(thr) and thr >= 0.01:
            busy += f" ({cores(thr)} cores throttled by the quota)"
        return f"{busy} while making {calls}"

    def _rate_context(self, f: _Facts, cpu: float, rate: float) -> str:
        """Syscalls per CPU-second (comparable across pods of any CPU use) against benign pods."""
        per = from_log(f("res.log_syscalls_per_cpu_s"))
        if _finite(cpu) and cpu >= 0.05 and _finite(per) and rate > 0:
            bench = self._bench("res.log_syscalls_per_cpu_s")
            return f" ({num(per)} per CPU-second" + (f"; {bench}" if bench else "") + ")"
        bench = self._bench("rate.syscalls_per_s")
        return f" ({bench})" if bench else ""

    def _bench(self, name: str) -> str:
        lo_hi = self.benign.get(name)
        return self.wording.benign_range(name, lo_hi[0], p95=lo_hi[1]) if lo_hi else ""

    @staticmethod
    def _threads(f: _Facts, res: bool) -> str:
        if res and _finite(f("res.threads")):
            t, run, procs = f("res.threads"), f("res.running"), f("res.processes")
            text = _plural(t, "thread", "threads")
            if _finite(run):
                text += f" ({num(run)} runnable)"
            if _finite(procs) and procs > 1:
                text += f" in {num(procs)} processes"
            return text
        tc = f("thread.count")
        if _finite(tc) and tc > 0:
            return f"{_plural(tc, 'thread', 'threads')} made calls"
        return ""

    @staticmethod
    def _memory(f: _Facts, res: bool) -> str:
        if not res:
            return ""
        mem, huge = from_log(f("res.log_memory_mb")), from_log(f("res.log_hugetlb_mb"))
        parts = []
        if _finite(mem):
            parts.append(f"{megabytes(mem)} memory")
        if _finite(huge):
            parts.append(f"{megabytes(huge)} in huge pages" if huge >= 0.5 else "no huge pages")
        return ", ".join(parts)

    def _io(self, f: _Facts, res: bool) -> str:
        parts = []
        if res and _finite(f("res.sockets_inet")):
            parts.append(f"{_plural(f('res.sockets_inet'), 'TCP/UDP socket', 'TCP/UDP sockets')} open")
            other = f("res.sockets_other")
            if _finite(other) and other > 0:
                parts.append(f"{_plural(other, 'other socket', 'other sockets')} open")
            files = f("res.files")
            if _finite(files):
                parts.append(f"{_plural(files, 'file', 'files')} open")
        if not f.has("io.socket_share"):
            return ", ".join(parts)
        n = _count(from_log(f("stat.log_count")))
        cheap = f("cheap_share")
        nc = n * (1.0 - cheap) if _finite(cheap) else n
        has_kind = f("io.has_fd_kind") == 1.0
        for what, share_name, rate_name in (
            ("socket", "io.socket_share", "io.socket_per_s"),
            ("file", "io.file_share", "io.file_per_s"),
        ):
            k = _calls(f(share_name), nc)
            if math.isnan(k) or k == 0:
                parts.append(f"{'0' if k == 0 else 'unknown'} {what} I/O")
                continue
            extra = []
            rate = f(rate_name)
            if _finite(rate):
                extra.append(f"{num(rate)}/s")
            if what == "socket" and has_kind:
                inet = _calls(f("io.inet_share"), nc)
                if _finite(inet):
                    extra.append(f"{num(inet)} on TCP/UDP")
            text = _plural(k, f"{what} I/O call", f"{what} I/O calls")
            parts.append(text + (f" ({', '.join(extra)})" if extra else ""))
        if not has_kind:
            k = _calls(sum(f(c) for c in self._ambiguous), n)
            if k > 0:
                parts.append(f"{_plural(k, 'read/write call', 'read/write calls')} on fds of unknown kind")
        return ", ".join(parts)

    def _top_syscalls(self, v: F64, ids: npt.ArrayLike | None, k: int = 3) -> str:
        if len(self._freq_cols):
            shares = np.nan_to_num(v[self._freq_cols], nan=0.0, posinf=0.0, neginf=0.0)
            order = np.argsort(-shares, kind="stable")[:k]
            return ", ".join(f"{self._freq_names[j]} {share(float(shares[j]))}" for j in order if shares[j] > 0)
        if ids is not None:
            w = WindowIds(ids, self.params)
            if len(w.full):
                counts = np.bincount(w.full)
                order = np.argsort(-counts, kind="stable")[:k]
                total = len(w.full)
                return ", ".join(f"{VOCABULARY[j]} {share(counts[j] / total)}" for j in order if counts[j] > 0)
        return ""


def _calls(s: float, nc: float) -> float:
    if not (_finite(s) and _finite(nc)):
        return math.nan
    k = max(s, 0.0) * nc
    return float(round(k)) if abs(k) < 1e15 else k


def _process_text(p: ProcessRef) -> str:
    detail = [f"pid {p.pid}"]
    if p.exe:
        detail.append(p.exe if len(p.exe) <= 120 else "..." + p.exe[-117:])
    if p.cpu_cores is not None:
        detail.append(f"{cores(p.cpu_cores)} cores")
    return f"{p.comm or 'unnamed'} ({', '.join(detail)})"


@lru_cache(maxsize=8)
def _describer(names: tuple[str, ...], params: FeatureParams | None) -> WindowDescriber:
    return WindowDescriber(names, params)


def behaviour_summary(
    x: npt.ArrayLike,
    names: Sequence[str],
    *,
    ids: npt.ArrayLike | None = None,
    process: ProcessRef | None = None,
    scope: str = "stream",
    params: FeatureParams | None = None,
    benign: Mapping[str, tuple[float, float]] | None = None,
) -> str:
    """One sentence on a window from its feature vector ``x`` laid out as ``names`` (see ``WindowDescriber``).

    "2.0 cores busy while making 20 syscalls/s (10 per CPU-second; benign pods: 150-4,500 syscalls per
    CPU-second); 3 threads (2.0 runnable); 256 MB memory, no huge pages; 1 TCP/UDP socket open, ...;
    top syscalls: epoll_wait 50%, read 50%."
    """
    d = WindowDescriber(names, params, benign) if benign else _describer(tuple(names), params)
    return d.summary(x, ids=ids, process=process, scope=scope)
