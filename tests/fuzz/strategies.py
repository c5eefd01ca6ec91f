"""Hypothesis strategies that make hostile inputs from valid ones.

* text traces: line-level mutations of a real capture (extreme numbers in place of numbers, control
  characters, huge lines, deep JSON, duplicated/removed/cut lines, random bytes);
* messages: a valid message with one or more values replaced by hostile JSON values (int64 edges and
  far beyond, NaN/Infinity, long or control-character strings, deep nesting, wrong types), keys
  removed or added, then possibly byte-mutated;
* trace files: a valid trace rewritten with hostile metadata, column names and column types, or its
  Parquet bytes mutated.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import strategies as st

from tests.fuzz.targets import seeds

_NUMBER = re.compile(rb"\d+")
EXTREME_NUMBERS = [
    b"0",
    b"-1",
    b"2147483647",
    b"2147483648",
    b"4294967296",
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551616",
    b"1" + b"0" * 100,
    b"9" * 5000,
    b"0x7fffffffffffffff",
    "١٢٣".encode(),
    "²".encode(),
    b"1e999",
    b"-9223372036854775809",
]
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\x00", "\n", "\r", "\x1b[31m", "\u202e", "\ud800", "a/b", " ", "*", "..", "-", "\ufeff"]),
    st.sampled_from(["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "1969-12-31T23:59:59Z", "NaN"]),
    st.builds(
        lambda s, n: s * n, st.sampled_from(["a", "(", "[", "{", '"', "\\", " (1) ", "a:b "]), st.integers(1, 40_000)
    ),
)


def _mutate_line(draw: st.DrawFn, line: bytes) -> list[bytes]:
    op = draw(st.integers(0, 9))
    numbers = list(_NUMBER.finditer(line))
    if op <= 2 and numbers:
        m = draw(st.sampled_from(numbers))
        return [line[: m.start()] + draw(st.sampled_from(EXTREME_NUMBERS)) + line[m.end() :]]
    if op == 3:
        pos = draw(st.integers(0, len(line)))
        return [line[:pos] + draw(HOSTILE_TEXT).encode("utf-8", "surrogatepass") + line[pos:]]
    if op == 4:
        return [line[: draw(st.integers(0, len(line)))]]
    if op == 5:
        return [line, line]
    if op == 6:
        return []
    if op == 7:
        return [draw(st.binary(max_size=200))]
    if op == 8:
        return [line[:200] * draw(st.integers(2, 3000))]
    depth = draw(st.integers(1, 5000))
    return [b"[" * depth + line + b"]" * draw(st.integers(0, depth))]


@st.composite
def mutated_text(draw: st.DrawFn, boundary: str) -> bytes:
    """A seed capture of ``boundary`` with a few lines mutated (or, rarely, random bytes)."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=4096))
    seed = draw(st.sampled_from(seeds(boundary)))
    lines = seed.splitlines(keepends=False)[: draw(st.integers(1, 200))]
    for _ in range(draw(st.integers(1, 6))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        lines[i : i + 1] = _mutate_line(draw, lines[i])
    return b"\n".join(lines) + draw(st.sampled_from([b"\n", b"", b"\r\n"]))


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


HOSTILE_JSON = st.one_of(
    st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**100, 10**4000, 1.5, 1e308]),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), True, False, None, [], {}, "", "0"]),
    HOSTILE_TEXT,
    st.integers(1, 3000).map(_deep),
    st.lists(st.integers(), max_size=5),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
    st.integers(10_000, 100_000).map(lambda n: [0] * n),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if len(prefix) >= 12:
        return out
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:8]):
            out += _paths(v, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        out = dict(doc)
        if delete and not rest:
            out.pop(head, None)
        else:
            out[head] = _replace(doc[head], rest, value, delete)
        return out
    out_list = list(doc)
    out_list[head] = _replace(doc[head], rest, value, delete)
    return out_list


@st.composite
def mutated_json(draw: st.DrawFn, boundary: str) -> bytes:
    """A valid message of ``boundary`` with hostile values, keys removed/added, maybe byte-mutated."""
    return _mutated_doc(draw, draw(st.sampled_from(seeds(boundary))))


def _mutated_doc(draw: st.DrawFn, valid: bytes) -> bytes:
    """A JSON document with hostile values, keys removed/added, maybe byte-mutated (``valid``: JSON)."""
    try:
        doc: Any = json.loads(valid)
    except ValueError:  # an earlier mutation left no JSON: start again from null
        doc = None
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(doc)))
        op = draw(st.integers(0, 5))
        if op == 0 and path:
            doc = _replace(doc, path, None, delete=True)
        elif op == 1 and isinstance(doc, dict):
            doc = {**doc, draw(st.text(max_size=12)): draw(HOSTILE_JSON)}
        else:
            doc = _replace(doc, path, draw(HOSTILE_JSON), delete=False)
    try:
        raw = json.dumps(doc).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        raw = b"{}"
    if draw(st.integers(0, 4)) == 0:
        data = bytearray(raw)
        for _ in range(draw(st.integers(1, 8))):
            if data:
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        raw = bytes(data)
    return raw


def _rewritten(draw: st.DrawFn, seed: bytes) -> bytes:
    table = pq.read_table(io.BytesIO(seed))
    meta = dict(table.schema.metadata or {})
    op = draw(st.integers(0, 4))
    if op == 0:  # hostile trace metadata
        key = draw(st.sampled_from(sorted(meta)))
        doc = json.loads(meta[key])
        path = draw(st.sampled_from(_paths(doc)))
        doc = _replace(doc, path, draw(HOSTILE_JSON), delete=False)
        try:
            meta[key] = json.dumps(doc).encode("utf-8", "surrogatepass")
        except (ValueError, RecursionError):
            meta[key] = draw(st.binary(max_size=64))
    elif op == 1:  # metadata bytes that are not JSON / not UTF-8
        meta[draw(st.sampled_from(sorted(meta)))] = draw(st.binary(max_size=64))
    elif op == 2:  # a column renamed (maybe to bytes that are not UTF-8) or dropped
        i = draw(st.integers(0, table.num_columns - 1))
        if draw(st.booleans()):
            table = table.remove_column(i)
        else:
            names = list(table.column_names)
            names[i] = draw(HOSTILE_TEXT).encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            table = table.rename_columns(names)
    elif op == 3:  # a column of another type with extreme values
        i = draw(st.integers(0, table.num_columns - 1))
        value = draw(st.sampled_from([2**63 - 1, -(2**63), 2**31, -1, 0]))
        kind = draw(st.sampled_from(["int", "str", "float", "null"]))
        column = {
            "int": pa.array([value] * table.num_rows, pa.int64()),
            "str": pa.array([str(value)] * table.num_rows, pa.string()),
            "float": pa.array([float("nan")] * table.num_rows, pa.float64()),
            "null": pa.nulls(table.num_rows),
        }[kind]
        table = table.set_column(i, table.column_names[i], column)
    else:  # invalid UTF-8 in a string column (built unchecked, as a foreign writer could store it)
        i = draw(st.sampled_from([j for j, f in enumerate(table.schema) if pa.types.is_string(f.type)]))
        raw = b"\xff\xfe" + draw(st.binary(max_size=8))
        n = table.num_rows
        offsets = pa.py_buffer(np.arange(0, len(raw) * (n + 1), len(raw), dtype=np.int32).tobytes())
        column = pa.Array.from_buffers(pa.string(), n, [None, offsets, pa.py_buffer(raw * n)])
        table = table.set_column(i, table.column_names[i], column)
    table = table.replace_schema_metadata(meta)
    out = io.BytesIO()
    try:
        pq.write_table(table, out)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeEncodeError):
        return seed
    return out.getvalue()


@st.composite
def mutated_parquet(draw: st.DrawFn) -> bytes:
    """A sample trace rewritten with hostile metadata/columns, or its bytes mutated."""
    seed = draw(st.sampled_from(seeds("read_trace")))
    if draw(st.booleans()):
        return _rewritten(draw, seed)
    data = bytearray(seed)
    op = draw(st.integers(0, 3))
    if op == 0:
        return bytes(data[: draw(st.integers(0, len(data)))])
    for _ in range(draw(st.integers(1, 16))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@st.composite
def mutated_gzip(draw: st.DrawFn) -> bytes:
    """A mutated strace capture, gzip-compressed, the compressed stream sometimes cut or corrupted."""
    data = bytearray(gzip.compress(draw(mutated_text("import:strace")), mtime=0))
    op = draw(st.integers(0, 3))
    if op == 0:
        return bytes(data[: draw(st.integers(0, len(data)))])
    if op == 1:
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


_STREAM_EDGES: dict[str, list[Any]] = {
    "seq": [0, 1, 2**63 - 1, 3],
    "start_ns": [0, 1, 946_684_800 * 10**9, 2**62, 2**63 - 1],
    "end_ns": [0, 2**63 - 1, 1_767_225_600_000_000_000],
    "lost_before": [2**63 - 1, 2**62, 1],
    "lost_events": [2**63 - 1, 2**62, 0],
    "tid": [[2**31 - 1] * 10, [0] * 10, [-1] * 10],
    "dt_ns": [[0] * 10, list(range(10, 0, -1)), [2**62] * 10],
    "ts_ns": [0, 2**63 - 1, 1_767_225_600_000_000_000],
    "uid": ["0d9e2c4b-1a2b-4c3d-8e9f-a0b1c2d3e4f5", "-", "a" * 64, "5b0c1f0e-8f7e-4c1e-9a0b-2d6f1e3c4a5b"],
    "node": ["node-b", "", "node-a"],
    "container_id": ["3f4e" * 16, "", "x"],
    "cpu_ns": [0, 2**63 - 1, 2**62],
}


def _stream_edit(draw: st.DrawFn, valid: bytes) -> bytes:
    """A message of a stream with one field set to a value at the edges of what the engine tracks (seq
    regressions and jumps, times near int64, losses that add up past it, another pod, node or container)."""
    try:
        doc: Any = json.loads(valid)
    except ValueError:  # an earlier mutation left no JSON
        return valid
    paths = [p for p in _paths(doc) if p and p[-1] in _STREAM_EDGES]
    if not paths:
        return valid
    path = draw(st.sampled_from(paths))
    doc = _replace(doc, path, draw(st.sampled_from(_STREAM_EDGES[path[-1]])), delete=False)
    return json.dumps(doc, separators=(",", ":")).encode()


@st.composite
def message_sequence(draw: st.DrawFn) -> bytes:
    """A featurizer input: a seed sequence with messages edited, mutated, repeated, dropped or reordered,
    and any flags (``tests/fuzz/featurizer_target.py``)."""
    from tests.fuzz.featurizer_target import MAX_MESSAGES, join, split

    flags, messages = split(draw(st.sampled_from(seeds("featurizer"))))
    flags = draw(st.one_of(st.just(flags), st.integers(0, 255)))
    for _ in range(draw(st.integers(1, 5))):
        if not messages:
            break
        i = draw(st.integers(0, len(messages) - 1))
        op = draw(st.integers(0, 5))
        if op <= 1:
            messages[i] = _stream_edit(draw, messages[i])
        elif op == 2:
            messages[i] = _mutated_doc(draw, messages[i])
        elif op == 3:
            messages.insert(draw(st.integers(0, len(messages))), messages[i])
        elif op == 4:
            del messages[i]
        else:
            messages = draw(st.permutations(messages))
    return join(flags, messages[:MAX_MESSAGES])


_PATH_SEGMENTS = st.one_of(
    HOSTILE_TEXT,
    st.sampled_from(["v1", "pods", "team-a", "miner-1", "explanation", "explain", "admin", "models", "..", "%2F",
                     "%00", "%ff", "A" * 300, "a." * 130, "-a", "uid", "whoami", "cache", "purge", "reload"]),
)  # fmt: skip
_QUERY_KEYS = st.sampled_from(["method", "window", "format", "top", "model", "limit", "namespace", "alerting", "x"])
_QUERY_VALUES = st.one_of(
    HOSTILE_TEXT,
    st.sampled_from(["shap", "lime", "lstm-ae", "png", "json", "0", "-1", "51", "1001", "10" * 50, "true", "maybe",
                     "minerlens-xgboost", "minerlens-lstm-ae", "uid-team-a-miner-1/-/time:2s/883612800"]),
)  # fmt: skip
_HEADERS = st.one_of(
    st.tuples(st.just("content-type"), st.sampled_from(["text/plain", "application/x-www-form-urlencoded",
              "multipart/form-data; boundary=x", "application/json; charset=latin-1", "application/json", ""])),
    st.tuples(st.just("authorization"), st.sampled_from(["Bearer", "Bearer ", "Basic abc", "Bearer \x00",
              "bearer fuzz-read-9c1f3e0a7b5d4c2e8f6a1b3d5e7f9a0c", "Bearer " + "A" * 5000])),
    st.tuples(st.sampled_from(["accept", "accept-encoding", "x-forwarded-for", "cookie", "expect"]), HOSTILE_TEXT),
)  # fmt: skip


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text.encode("utf-8", "surrogatepass"), safe="")


@st.composite
def http_request(draw: st.DrawFn) -> bytes:
    """An api input: a seed request with its method, credentials, path segments, query, headers or JSON
    body changed to hostile values (``tests/fuzz/api_target.py``)."""
    data = draw(st.sampled_from(seeds("api")))
    control, (head, _, body) = data[0], data[1:].partition(b"\n\n")
    target, *lines = head.decode("latin-1").split("\n")
    path, _, query = target.partition("?")
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 7))
        if op == 0:
            control = draw(st.integers(0, 255))
        elif op == 1:
            parts = path.split("/")
            i = draw(st.integers(0, len(parts)))
            segment = _quote(draw(_PATH_SEGMENTS)) if draw(st.booleans()) else draw(_PATH_SEGMENTS)
            parts[i : i + draw(st.integers(0, 1))] = [segment.encode("utf-8", "surrogatepass").decode("latin-1")]
            path = "/".join(parts)
        elif op <= 3:
            pair = f"{draw(_QUERY_KEYS)}={_quote(draw(_QUERY_VALUES))}"
            query = f"{query}&{pair}" if query and draw(st.booleans()) else pair
        elif op == 4:
            name, value = draw(_HEADERS)
            lines.append(f"{name}: {value.encode('utf-8', 'surrogatepass').decode('latin-1')}")
        elif op <= 6 and body.startswith(b"{"):
            body = _mutated_doc(draw, body)
        else:
            body = draw(st.binary(max_size=512))
    target = path + (f"?{query}" if query else "")
    return bytes([control]) + "\n".join([target, *lines]).encode("latin-1") + b"\n\n" + body


def strategy(boundary: str) -> st.SearchStrategy[bytes]:
    if boundary == "featurizer":
        return message_sequence()
    if boundary == "api":
        return http_request()
    if boundary == "read_trace":
        return mutated_parquet()
    if boundary == "import:gzip":
        return mutated_gzip()
    if boundary.startswith("import:"):
        return mutated_text(boundary)
    return mutated_json(boundary)
