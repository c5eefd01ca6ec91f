"""Single features in operator terms: number formats, units, and ``FeatureWording`` (label, value, benign
range and one sentence for every feature name of every spec version: "sched_yield is 41% of calls (benign
pods: 0%)"). Part of the one wording of minerlens (``describe``); ``WindowIds`` names n-gram buckets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from minerlens_core.features.spec import FeatureParams, FeatureSpec
from minerlens_core.features.window_ids import NGRAM_GROUPS, WindowIds

DASH = "-"
"""Between the ends of a range ("5-30%"): ASCII, like every other character of the wording but µ and →."""
_MAX_LOG = 15.0  # log10 features above this are hostile or broken: shown as 10^15 at most

# ---- numbers -------------------------------------------------------------------------------------


def finite(v: float | None) -> bool:
    """Known: neither None nor NaN nor infinite."""
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


def plural(n: float, one: str, many: str) -> str:
    """ "1 thread", "3 threads"."""
    return f"{num(n)} {one if n == 1 else many}"


def whole(v: float) -> float:
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
    "res.sockets_inet": Wording("TCP/UDP sockets open (listening ones aside)", "{value} TCP/UDP sockets open"),
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
        lo = p05 if finite(p05) else median
        if not w.benign or lo is None or p95 is None or not finite(lo) or not finite(p95):
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
