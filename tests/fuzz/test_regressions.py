"""Inputs the fuzzers found that crashed a boundary, kept as tests.

Importer cases are in ``tests/core/test_importers_limits.py``.

Each was an undocumented exception (a traceback in a consumer or the CLI) before the fix.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from minerlens_core.errors import TraceFormatError
from minerlens_core.schemas.explanations import Explanation
from minerlens_core.schemas.windows import decode_verdict
from minerlens_core.traces import read_trace
from pydantic import ValidationError

from tests.fuzz.seeds import message_seeds, trace_seeds
from tests.fuzz.targets import target

DATA = Path(__file__).resolve().parents[1] / "data" / "fuzz"


def test_parquet_footer_arrow_cannot_read(tmp_path: Path) -> None:
    """atheris, read_trace: ``ArrowNotImplementedError: Integers with less than 8 bits`` from ``pq.read_table``."""
    with pytest.raises(TraceFormatError, match="not a minerlens trace"):
        read_trace(DATA / "read_trace-arrow-not-implemented.parquet")


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        # a row group claiming 1.2e12 rows: read_table allocated 20 GB (libFuzzer OOM)
        ("read_trace-footer-rows-oom.parquet", "corrupt or oversized Parquet footer"),
        # corrupt column statistics: reading them from Python aborts the process (uncaught C++ exception in
        # pyarrow 26), so the footer check must not; read_table reports it as an OSError
        ("read_trace-histogram-mismatch.parquet", "Definition level histogram size mismatch"),
    ],
)
def test_corrupt_footers_found_by_atheris(name: str, needle: str) -> None:
    """Each file is read in a child limited to 2 GiB of address space: a regression (an allocation of
    tens of GB, an abort) fails this test, not the machine or the test process."""
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "from minerlens_core.errors import TraceFormatError\n"
        "from minerlens_core.traces import read_trace\n"
        "try:\n"
        "    read_trace(sys.argv[1])\n"
        "except TraceFormatError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(DATA / name)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert needle in done.stdout


def _rewrite(tmp_path: Path, table: pa.Table) -> Path:
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    return path


def _sample() -> pa.Table:
    return pq.read_table(io.BytesIO(trace_seeds()[0]))


def test_string_column_that_is_not_utf8(tmp_path: Path) -> None:
    """hypothesis, read_trace: bytes in a string column decoded later (``UnicodeDecodeError`` in a consumer)."""
    table = _sample()
    n = table.num_rows
    offsets = pa.py_buffer(np.arange(0, 2 * (n + 1), 2, dtype=np.int32).tobytes())
    bad = pa.Array.from_buffers(pa.string(), n, [None, offsets, pa.py_buffer(b"\xff\xfe" * n)])  # unchecked
    table = table.set_column(table.schema.get_field_index("comm"), "comm", bad)
    with pytest.raises(TraceFormatError, match="invalid values"):
        read_trace(_rewrite(tmp_path, table))


def test_metadata_nested_too_deep_to_write_again(tmp_path: Path) -> None:
    """hypothesis, read_trace: ``extra`` nested 300 deep decoded, then ``model_dump_json`` failed."""
    table = _sample()
    meta = dict(table.schema.metadata)
    doc = json.loads(meta[b"minerlens.trace"])
    deep: object = 1
    for _ in range(300):
        deep = [deep]
    doc["extra"] = {"x": deep}
    meta[b"minerlens.trace"] = json.dumps(doc).encode()
    with pytest.raises(TraceFormatError, match="bad minerlens trace metadata"):
        read_trace(_rewrite(tmp_path, table.replace_schema_metadata(meta)))


def test_column_name_that_is_not_utf8(tmp_path: Path) -> None:
    """atheris, read_trace: ``UnicodeDecodeError`` from ``table.schema.names`` (a flipped byte in a column name)."""
    data = bytearray(trace_seeds()[0])
    at = data.find(b"\x18\x05ts_ns")  # the name of the first column in the Parquet footer's schema
    assert at > 0
    data[at + 2] = 0xFF
    path = tmp_path / "t.parquet"
    path.write_bytes(bytes(data))
    with pytest.raises(TraceFormatError):
        read_trace(path)
    target("read_trace")(bytes(data))


@pytest.mark.parametrize(
    "change",
    [
        {"params": {"unit": "log-odds", "share": float("nan")}},
        {"params": {"unit": "log-odds", "share": float("inf")}},
        {"contributions": [{**message_seeds("explanations")[0]["contributions"][0], "contribution": float("nan")}]},
        {"cost_ms": float("inf")},  # hypothesis (long run): passed ge=0, encoded as null, refused on reading
        {"threshold": float("nan")},
    ],
)
def test_explanation_with_nan_is_refused_at_decode(change: dict[str, object]) -> None:
    """hypothesis, explanations: NaN decoded, encoded as null, and the encoding no longer decoded."""
    doc = {**message_seeds("explanations")[0], **change}
    raw = json.dumps(doc).encode()  # NaN / Infinity tokens, as Python's json writes them
    with pytest.raises(ValidationError):
        Explanation.model_validate_json(raw)
    target("explanations")(raw)


def test_verdict_with_an_infinite_threshold_is_refused_at_decode() -> None:
    """hypothesis (long run), verdicts: ``scores[0].threshold = Infinity`` was decoded, encoded as null and then
    refused on reading; the contract's verdict schema now takes ``bounds.FiniteFloat`` only."""
    doc = message_seeds("verdicts")[0]
    doc = {**doc, "scores": [{**doc["scores"][0], "threshold": float("inf")}]}
    with pytest.raises(ValidationError):
        decode_verdict(json.dumps(doc))
