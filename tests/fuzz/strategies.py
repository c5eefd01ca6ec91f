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
    doc: Any = json.loads(draw(st.sampled_from(seeds(boundary))))
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
        value = b"\xff\xfe" + draw(st.binary(max_size=8))
        n = table.num_rows
        offsets = pa.py_buffer(np.arange(0, len(value) * (n + 1), len(value), dtype=np.int32).tobytes())
        column = pa.Array.from_buffers(pa.string(), n, [None, offsets, pa.py_buffer(value * n)])
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


def strategy(boundary: str) -> st.SearchStrategy[bytes]:
    if boundary == "read_trace":
        return mutated_parquet()
    if boundary == "import:gzip":
        return mutated_gzip()
    if boundary.startswith("import:"):
        return mutated_text(boundary)
    return mutated_json(boundary)
