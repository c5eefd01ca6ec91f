"""``minerlens collector watch --json``: the per-pod view of the syscall topic as one JSON array on stdout.

Once with the Kafka read replaced by a view built from real batches (every value checked), once for real:
a trace replayed into a topic of its own, then watched from its start."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from minerlens_collector.tools.cli import WATCH_COLUMNS
from minerlens_collector.tools.replay import batches_from_trace
from minerlens_collector.tools.watch import StreamView
from minerlens_core.cli import _load_plugins, app
from minerlens_core.schemas import ResourceSample, ResourceSnapshot
from minerlens_core.traces import read_trace
from typer.testing import CliRunner

from tests.integration.services import kafka_bootstrap, require_kafka

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample-v1" / "traces"
TRACE = SAMPLE / "idle-redis-r1.parquet"
KEYS = {c.replace(" ", "_").replace("/", "_per_") for c in WATCH_COLUMNS}
runner = CliRunner()
_load_plugins()


def _view() -> StreamView:
    view = StreamView()
    batches = batches_from_trace(read_trace(TRACE), node="n1", max_events=200, start_ns=1_900_000_000_000_000_000)
    for b in batches:
        view.add(b)
    view.add(batches[0])  # a resend: counted as a duplicate
    env = batches[0].envelope
    for i in range(2):  # one core busy between two samples
        view.add(ResourceSample(envelope=env, sample=ResourceSnapshot(ts_ns=10**18 + i * 10**9, cpu_ns=i * 10**9)))
    return view


def test_watch_json_prints_one_object_per_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    view = _view()

    async def fake_watch(*args: Any, **kwargs: Any) -> StreamView:
        assert kwargs["topic"] == "some.topic"
        assert kwargs.get("on_update") is None, "no live rendering with --json"
        return view

    monkeypatch.setattr("minerlens_collector.tools.cli.watch_stream", fake_watch)
    result = runner.invoke(app, ["collector", "watch", "--seconds", "0", "--topic", "some.topic", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert set(row) == KEYS
    (pod,) = view.pods.values()
    assert row["pod"] == pod.pod
    assert row["node"] == "n1"
    assert row["batches"] == pod.batches > 1
    assert row["syscalls"] == pod.syscalls == read_trace(TRACE).table.num_rows
    assert row["dup"] == 1
    assert row["gaps"] == 0
    assert row["lost"] == 0
    assert row["cores"] == 1.0
    assert isinstance(row["rate_per_s"], float)
    assert row["rate_per_s"] > 0
    assert len(row["top_syscalls"]) == 4
    assert list(row["top_syscalls"]) == [k for k, _ in pod.top.most_common(4)]
    assert all(0 < share <= 1 for share in row["top_syscalls"].values())


def test_watch_json_of_an_empty_topic_is_an_empty_array(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_watch(*args: Any, **kwargs: Any) -> StreamView:
        return StreamView()

    monkeypatch.setattr("minerlens_collector.tools.cli.watch_stream", fake_watch)
    result = runner.invoke(app, ["collector", "watch", "--seconds", "0", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


def test_watch_json_reads_a_replayed_trace_back(monkeypatch: pytest.MonkeyPatch) -> None:
    require_kafka()
    monkeypatch.setenv("MINERLENS_KAFKA_BOOTSTRAP", kafka_bootstrap())
    topic = f"test.watch.{uuid.uuid4().hex[:8]}"
    sent = runner.invoke(app, ["collector", "replay", str(TRACE), "--node", "n-json", "--topic", topic])
    assert sent.exit_code == 0, sent.output
    summary = json.loads(sent.stdout)
    watched = runner.invoke(
        app, ["collector", "watch", "--topic", topic, "--from-beginning", "--seconds", "6", "--json"]
    )
    assert watched.exit_code == 0, watched.output
    (row,) = json.loads(watched.stdout)
    assert row["node"] == "n-json"
    assert row["syscalls"] == summary["syscalls"] == read_trace(TRACE).table.num_rows
    assert row["batches"] == summary["batches"]
    assert row["dup"] == row["gaps"] == 0
