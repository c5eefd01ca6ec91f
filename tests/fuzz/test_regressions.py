"""Inputs the fuzzers found that crashed a boundary, kept as tests.

Importer cases are in ``tests/core/test_importers_limits.py``. Featurizer cases run the whole input
through the ``featurizer`` target (which failed before the fix) and check what the engine made of it.

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
from minerlens_core.schemas.bounds import INT64_MAX
from minerlens_core.schemas.explanations import Explanation
from minerlens_core.schemas.windows import FeatureWindow, decode_verdict, decode_window
from minerlens_core.traces import read_trace
from pydantic import ValidationError

from tests.fuzz.featurizer_target import EVERY, FLUSH, RESTART, drive, join
from tests.fuzz.seeds import POD_A, T0, message_seeds, pod_batch, pod_drop, pod_sample, trace_seeds
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


# --- featurizer (hypothesis, featurizer boundary): windows the engine emitted that consumers refuse ---------

S = 10**9


def _windows(flags: int, messages: list[str]) -> tuple[list[FeatureWindow], dict[str, int]]:
    """The windows (decoded) and dead-letter reasons of a featurizer input; raises on a fuzz failure."""
    data = join(flags, [m.encode() for m in messages])
    target("featurizer")(data)
    run = drive(data)
    return [decode_window(v) for v in run.windows.values()], dict(run.reasons)


def _with(message: str, **changes: object) -> str:
    body = json.loads(message)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = body
        for p in parents:
            node = node[p][0] if isinstance(node[p], list) else node[p]
        node[leaf] = value
    return json.dumps(body)


def test_losses_that_add_up_past_int64_saturate() -> None:
    """A node-wide drop report of 2**63-1 events plus a pod's 40: the window's ``lost_events`` was 2**63+39,
    beyond the contract's bound (the scorer refused the window); it is now saturated."""
    messages = [
        pod_batch(POD_A, 1, T0),
        pod_drop(None, INT64_MAX, T0 + S // 2),
        pod_drop(POD_A, 40, T0 + S // 2),
        pod_batch(POD_A, 2, T0 + S),
        pod_batch(POD_A, 3, T0 + 3 * S),
    ]
    windows, reasons = _windows(FLUSH, messages)
    assert reasons == {}
    assert INT64_MAX in [w.lost_events for w in windows]


@pytest.mark.parametrize("ts_ns", [INT64_MAX, 12_345])
def test_resource_sample_at_an_impossible_time_is_dead_lettered(ts_ns: int) -> None:
    """A sample at 2**63-1 ns moved the stream's time slot past year 2262: the next window's envelope time was
    out of range and the window could not be encoded. Samples are now timed like batches (``impossible``)."""
    messages = [pod_batch(POD_A, 1, T0), _with(pod_sample(POD_A, T0, 1.0), sample__ts_ns=ts_ns)]
    messages.append(pod_batch(POD_A, 2, T0 + 3 * S))
    windows, reasons = _windows(FLUSH, messages)
    assert reasons == {"impossible": 1}
    assert [w.count for w in windows if w.scope == "stream"] == [10, 10]


def test_process_cpu_beyond_the_contract_is_capped() -> None:
    """Process CPU counters 2**62 ns apart in two samples 0.5 s apart: ``ProcessRef.cpu_cores`` was 9.2e9,
    over the contract's 2**20 cores, and the window could not be encoded."""
    messages = [pod_sample(POD_A, T0, 0.0)]
    for k in range(1, 5):
        messages += [pod_batch(POD_A, k, T0 + k * S // 2, n=8), pod_sample(POD_A, T0 + k * S // 2 + 1, k * 0.9)]
    messages[4] = _with(messages[4], sample__processes__cpu_ns=1 << 62)
    windows, reasons = _windows(0xC0 | FLUSH, messages)  # per-process time windows
    assert reasons == {}
    assert float(1 << 20) in [w.process.cpu_cores for w in windows if w.process is not None]  # the bound


def test_no_process_window_for_pid_0() -> None:
    """Threads without a known process have pid 0 (imported traces without thread ids): a process window for
    pid 0 could not be encoded (``ProcessRef.pid`` >= 1); their events count in the stream window only."""
    tasks = [{"tid": 100, "pid": 100, "comm": "nginx"}, {"tid": 101, "pid": 101, "comm": "xmrig"}]
    messages = [_with(pod_batch(POD_A, k, T0 + k * S, n=9), tid=[0, 100, 101] * 3, tasks=tasks) for k in range(1, 5)]
    windows, reasons = _windows(0xC0 | FLUSH, messages)
    assert reasons == {}
    assert {w.window_id.rsplit("/", 1)[1] for w in windows if w.scope == "process"} == {"p100", "p101"}
    assert {w.count for w in windows if w.scope == "stream"} == {9}


def test_count_window_over_time_that_steps_back() -> None:
    """A batch 26 years older than the one before it (seq still rising): the count window over both ended
    before it started (``end_ns`` < ``start_ns``), which the contract refuses. Its span is now min..max."""
    messages = [pod_batch(POD_A, 1, T0, n=40), pod_batch(POD_A, 2, 946_684_800 * S, n=40)]
    windows, reasons = _windows(0x80 | FLUSH, messages)  # count windows, 64 events, stride 16
    assert reasons == {}
    spans = [(w.start_ns, w.end_ns) for w in windows]
    assert (946_684_800 * S, T0 + 39 * 90_000_000 + 1) in spans
    assert all(s is not None and e is not None and s < e for s, e in spans)


def test_stream_moved_by_a_resent_sample_is_persisted() -> None:
    """hypothesis (long run): a resent resource sample from another node moved the stream to that node's
    builder in memory, then was dropped as a duplicate without marking the stream changed: after a restart
    the stream was back on the first node (the restored state differed from the state before)."""
    on_b = _with(pod_sample(POD_A, T0 + S, 1.0), envelope__node="node-b")
    messages = [pod_sample(POD_A, T0, 0.5), on_b, pod_sample(POD_A, T0, 0.5)]
    messages += [pod_batch(POD_A, k, T0 + k * S) for k in range(1, 4)]
    windows, reasons = _windows(RESTART | EVERY | FLUSH, messages)  # restart after the third message
    assert reasons == {}
    assert {w.envelope.node for w in windows} == {"node-a"}
