"""Bounded field types of the wire contract: what a number, a name or a text may be on any topic.

Every message may come from an attacker (a pod shapes its syscalls, a client with Kafka write access
writes any bytes). A field of the contract therefore says what it holds *and* how big it may be, and
``decode_*`` refuses the rest with a ``pydantic.ValidationError`` that names the field. Use these types
in every schema instead of a bare ``int`` / ``str`` / ``dict``:

==========================  ============================================================================
type                        accepts
==========================  ============================================================================
``Int64``                   ``-2**63 .. 2**63-1`` (what Parquet, numpy and Java consumers can hold)
``NonNegInt64``             ``0 .. 2**63-1``: counters (``lost_events``, sequence numbers), ns/ms stamps
``Int32`` / ``NonNegInt32`` ``-2**31 .. 2**31-1`` / ``0 .. 2**31-1``: tids, pids, cpus, syscall numbers
``UnixNs`` / ``UnixMs``     non-negative int64 times since the Unix epoch (aliases of ``NonNegInt64``)
``FiniteFloat``             a float that is neither NaN nor infinite (a required float that must survive
                            a JSON round trip: NaN would be encoded as ``null``)
``BoundedTime``             a time with a zone, between 1970 and 2262-04-11 UTC (what int64 ns hold; an
                            offset that pushes it past year 9999 in UTC would crash a consumer)
``SafeText``                at most 1024 characters, no control characters (see below)
``ShortText``/``LongText``  the same with at most 256 / 8192 characters
``PodUid``                  ``[0-9a-z][0-9a-z_.-]*``, at most 64 (a Kubernetes uid, ``node``, ...)
``K8sNamespace``            a DNS-1123 label: ``[a-z0-9]([-a-z0-9]*[a-z0-9])?``, at most 63
``K8sName``                 a DNS-1123 subdomain as Kubernetes checks it (``IsDNS1123Subdomain``:
                            such labels joined by ``.``, no per-label limit), at most 253: pod names
``K8sNamespaceOrEmpty``     the same or ``""`` (unknown: only the pod uid is known)
``K8sNameOrEmpty``
``LabelKey`` / ``LabelValue``  Kubernetes label syntax: ``[prefix/]name`` (prefix a DNS-1123
                            subdomain <= 253, name <= 63 of ``[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?``);
                            value empty or like a name
``K8sLabels``               ``dict[LabelKey, LabelValue]`` of at most ``MAX_LABELS`` entries
``NodeName`` / ``ClusterName``  host-name-like: ``[A-Za-z0-9]``, then ``[A-Za-z0-9._-]``, ending
                            alphanumeric, at most 253 (upper case allowed: host names outside Kubernetes)
``ContainerIdOrEmpty``      ``""`` or ``[A-Za-z0-9][A-Za-z0-9_.:-]*``, at most 128 (runtime prefix
                            ``containerd://`` stripped by the producer)
``ImageName``               a container image's repository, ``[registry[:port]/]path``, at most 512
``ImageTagOrEmpty``         ``""`` or an image tag, ``[A-Za-z0-9_][A-Za-z0-9_.-]*``, at most 128
``ImageDigestOrEmpty``      ``""`` or ``algorithm:hex`` (at least 32 hex digits), at most 160
``BoundedJson``             any JSON value nested at most ``MAX_JSON_DEPTH`` deep, with int64 integers,
                            ``SafeText``-like strings of at most ``MAX_JSON_STRING`` characters and at
                            most ``MAX_JSON_ITEMS`` items per list or object: open extension fields
==========================  ============================================================================

"Control characters" are the C0 and C1 controls (NUL, newline, escape, ...), DEL, the Unicode line
and paragraph separators, the bidirectional-override controls and lone surrogates: nothing that could
cut a log line, a CEF/syslog record or a terminal row, or reorder what an operator reads.

Producers that copy untrusted metadata into a message (pod labels from the Kubernetes API) use
:func:`bounded_labels` so that an object with too many labels is trimmed, never refused whole.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, Field

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
MAX_LABELS = 64
"""Labels one pod reference carries (Kubernetes has no limit; producers trim with ``bounded_labels``)."""
MAX_JSON_DEPTH = 16
MAX_JSON_ITEMS = 4096
MAX_JSON_STRING = 8192

Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
NonNegInt64 = Annotated[int, Field(ge=0, le=INT64_MAX)]
Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]
NonNegInt32 = Annotated[int, Field(ge=0, le=INT32_MAX)]
UnixNs = NonNegInt64
UnixMs = NonNegInt64
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
"""A float that is not NaN or infinite (JSON has neither: they would be encoded as ``null``)."""

_TIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
_TIME_MAX = datetime(2262, 4, 11, tzinfo=UTC)


def check_time(value: datetime) -> datetime:
    """``value`` if it is in 1970 .. 2262-04-11 UTC (int64 ns), else ``ValueError``."""
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not _TIME_MIN <= utc < _TIME_MAX:
        msg = "time outside 1970-01-01 .. 2262-04-11 UTC"
        raise ValueError(msg)
    return value


BoundedTime = Annotated[AwareDatetime, AfterValidator(check_time)]

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def check_text(value: str) -> str:
    """``value`` if it has no control character (see module docstring), else ``ValueError``."""
    bad = _CONTROL.search(value)
    if bad is not None:
        msg = f"control character U+{ord(bad.group()):04X} at position {bad.start()} is not allowed"
        raise ValueError(msg)
    return value


NoControl = AfterValidator(check_text)
"""Add to ``Annotated[str, Field(max_length=N), NoControl]`` for a text of another length."""

SafeText = Annotated[str, Field(max_length=1024), NoControl]
ShortText = Annotated[str, Field(max_length=256), NoControl]
LongText = Annotated[str, Field(max_length=8192), NoControl]

_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_SUB_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"  # Kubernetes' IsDNS1123Subdomain: no per-label limit
_SUBDOMAIN = rf"{_SUB_LABEL}(?:\.{_SUB_LABEL})*"
_NAME_PART = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9])?"

PodUid = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9a-z][0-9a-z_.-]*$")]
K8sNamespace = Annotated[str, Field(min_length=1, max_length=63, pattern=rf"^{_LABEL}$")]
K8sNamespaceOrEmpty = Annotated[str, Field(max_length=63, pattern=rf"^(?:{_LABEL})?$")]
K8sName = Annotated[str, Field(min_length=1, max_length=253, pattern=rf"^{_SUBDOMAIN}$")]
K8sNameOrEmpty = Annotated[str, Field(max_length=253, pattern=rf"^(?:{_SUBDOMAIN})?$")]
NodeName = Annotated[str, Field(min_length=1, max_length=253, pattern=rf"^{_HOST}$")]
ClusterName = NodeName
ContainerIdOrEmpty = Annotated[str, Field(max_length=128, pattern=r"^(?:[A-Za-z0-9][A-Za-z0-9_.:-]*)?$")]
ImageName = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")]
ImageTagOrEmpty = Annotated[str, Field(max_length=128, pattern=r"^(?:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")]
ImageDigestOrEmpty = Annotated[
    str, Field(max_length=160, pattern=r"^(?:[A-Za-z][A-Za-z0-9]*(?:[+._-][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$")
]

_LABEL_KEY = re.compile(rf"(?:(?P<prefix>{_SUBDOMAIN})/)?{_NAME_PART}")
_LABEL_VALUE = re.compile(rf"(?:{_NAME_PART})?")


def check_label_key(key: str) -> str:
    """A Kubernetes label key (``[prefix/]name``), else ``ValueError``."""
    m = _LABEL_KEY.fullmatch(key) if len(key) <= 253 + 1 + 63 else None
    if m is None or len(m.group("prefix") or "") > 253:
        msg = f"label key {key[:80]!r} is not [prefix/]name in Kubernetes label syntax"
        raise ValueError(msg)
    return key


def check_label_value(value: str) -> str:
    """A Kubernetes label value (empty, or at most 63 of ``[-A-Za-z0-9_.]`` starting and ending alphanumeric)."""
    if len(value) > 63 or _LABEL_VALUE.fullmatch(value) is None:
        msg = f"label value {value[:80]!r} is not in Kubernetes label syntax"
        raise ValueError(msg)
    return value


LabelKey = Annotated[str, AfterValidator(check_label_key)]
LabelValue = Annotated[str, AfterValidator(check_label_value)]
K8sLabels = Annotated[dict[LabelKey, LabelValue], Field(max_length=MAX_LABELS)]


def bounded_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels a message may carry: valid pairs only, the first ``MAX_LABELS`` by key (deterministic)."""
    out: dict[str, str] = {}
    for key in sorted(labels):
        if len(out) >= MAX_LABELS:
            break
        value = labels[key]
        try:
            check_label_key(key)
            check_label_value(value)
        except (ValueError, TypeError):
            continue
        out[key] = value
    return out


def check_json(value: Any) -> Any:
    """``value`` (a decoded JSON value) if within the ``BoundedJson`` limits, else ``ValueError``."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            msg = f"nested deeper than {MAX_JSON_DEPTH} levels"
            raise ValueError(msg)
        if isinstance(item, bool) or item is None or isinstance(item, float):
            continue
        if isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                msg = "integer outside the int64 range"
                raise ValueError(msg)
        elif isinstance(item, str):
            if len(item) > MAX_JSON_STRING:
                msg = f"string longer than {MAX_JSON_STRING} characters"
                raise ValueError(msg)
            check_text(item)
        elif isinstance(item, dict | list):
            if len(item) > MAX_JSON_ITEMS:
                msg = f"more than {MAX_JSON_ITEMS} items in one list or object"
                raise ValueError(msg)
            if isinstance(item, dict):
                for k, v in item.items():
                    stack.append((k, depth + 1))
                    stack.append((v, depth + 1))
            else:
                stack.extend((v, depth + 1) for v in item)
        else:
            msg = f"not a JSON value: {type(item).__name__}"
            raise ValueError(msg)
    return value


BoundedJson = Annotated[Any, AfterValidator(check_json)]
BoundedJsonObject = Annotated[dict[str, Any], AfterValidator(check_json)]
