"""Valid inputs of every fuzzed boundary: the starting points mutations are made from.

Importers start from the real captures and documented samples in ``tests/data/importers``, trace
files from the committed sample dataset, decoders from one valid message of each kind (the same
fields the producers set). ``test_seeds_are_valid`` keeps them valid as the contract evolves.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
IMPORTER_DATA = ROOT / "tests" / "data" / "importers"
SAMPLE_TRACES = ROOT / "data" / "sample" / "traces"

IMPORTER_SEEDS = {
    "strace": [
        IMPORTER_DATA / "strace" / "threads_f_tt_C.txt",
        IMPORTER_DATA / "strace" / "threads_f_tt_stderr.txt",
        IMPORTER_DATA / "strace" / "true_decorated.txt",
    ],
    "perf": [IMPORTER_DATA / "perf" / p for p in ("ls_default.txt", "ls_pid_tid_nocpu.txt", "ls_sys_enter_tp.txt")]
    + [IMPORTER_DATA / "perf" / "comm_spaces.txt"],
    "sysdig": [IMPORTER_DATA / "sysdig" / "default.txt", IMPORTER_DATA / "sysdig" / "container.txt"],
    "lid-ds": [IMPORTER_DATA / "sysdig" / "lidds_2019.txt", IMPORTER_DATA / "sysdig" / "lidds_2021.sc"],
    "tetragon": [IMPORTER_DATA / "tetragon" / "raw_syscalls.jsonl"],
    "names": [IMPORTER_DATA / "names" / "xmrig_head.txt"],
}
MAX_SEED_BYTES = 4 * 1024
"""Seeds are cut to their first lines: mutations of a small input explore more per second."""


def _head(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) <= MAX_SEED_BYTES:
        return data
    return data[: data.rfind(b"\n", 0, MAX_SEED_BYTES) + 1]


@cache
def importer_seeds(fmt: str) -> list[bytes]:
    return [_head(p) for p in IMPORTER_SEEDS[fmt]]


@cache
def trace_seeds() -> list[bytes]:
    """The smallest committed sample traces (Parquet bytes as ``write_trace`` wrote them)."""
    files = sorted(SAMPLE_TRACES.glob("*.parquet"), key=lambda p: p.stat().st_size)[:2]
    return [p.read_bytes() for p in files]


_ENVELOPE: dict[str, Any] = {
    "cluster": "prod-eu",
    "node": "node-a",
    "pod": {
        "uid": "5b0c1f0e-8f7e-4c1e-9a0b-2d6f1e3c4a5b",
        "namespace": "shop",
        "name": "web-0",
        "labels": {"app": "web", "app.kubernetes.io/part-of": "shop"},
    },
    "container_id": "3f4e" * 16,
    "observed_at": "2026-01-01T00:00:00.123456Z",
}
_MODEL = {"name": "minerlens-xgboost", "version": "0.1.0", "manifest_sha256": "ab" * 32}


def _batch() -> dict[str, Any]:
    return {
        "kind": "syscall_batch",
        "envelope": _ENVELOPE,
        "source": "tracefs",
        "arch": "x86_64",
        "seq": 41,
        "start_ns": 1_767_225_600_000_000_000,
        "end_ns": 1_767_225_600_000_900_000,
        "nr": [0, 1, 24, 202, 0],
        "tid": [10, 10, 11, 11, 12],
        "dt_ns": [0, 100, 200, 300, 900_000],
        "tasks": [{"tid": 10, "pid": 10, "comm": "xmrig"}, {"tid": 11, "pid": 10, "comm": "worker"}],
        "lost_before": 0,
    }


def _drop() -> dict[str, Any]:
    return {
        "kind": "drop_report",
        "envelope": {k: v for k, v in _ENVELOPE.items() if k != "pod"},
        "source": "tracefs",
        "reason": "ring_buffer_overrun",
        "lost_events": 1200,
        "cpu": 1,
        "interval_start_ns": 1_767_225_600_000_000_000,
        "interval_end_ns": 1_767_225_601_000_000_000,
        "detail": "cpu1 overrun",
    }


def _window() -> dict[str, Any]:
    return {
        "kind": "feature_window",
        "envelope": _ENVELOPE,
        "window_id": f"{_ENVELOPE['pod']['uid']}/{_ENVELOPE['container_id']}/time:1s/7",
        "policy": "time:1s",
        "index": 7,
        "start_ns": 1_767_225_600_000_000_000,
        "end_ns": 1_767_225_601_000_000_000,
        "first_seq": 40,
        "count": 5,
        "complete": True,
        "lost_events": 0,
        "feature_version": "1",
        "feature_digest": "cd" * 32,
        "features": [0.5, None, 12.0, 0.0],
        "sequence": [0, 1, 24, 202],
    }


def _verdict() -> dict[str, Any]:
    return {
        "kind": "verdict",
        "envelope": _ENVELOPE,
        "window_id": f"{_ENVELOPE['pod']['uid']}/{_ENVELOPE['container_id']}/time:1s/7",
        "policy": "time:1s",
        "index": 7,
        "start_ns": 1_767_225_600_000_000_000,
        "end_ns": 1_767_225_601_000_000_000,
        "count": 5,
        "lost_events": 0,
        "decision": "miner",
        "score": 0.97,
        "threshold": 0.5,
        "model": _MODEL,
        "scores": [{"model": _MODEL, "score": 0.97, "threshold": 0.5, "miner": True}],
        "reasons": [{"feature": "freq.sched_yield", "value": 0.41, "baseline": 0.01, "contribution": 0.3, "text": ""}],
        "detail": "",
    }


def _finding() -> dict[str, Any]:
    from tests.siem.findings import make_finding

    return json.loads(make_finding().model_dump_json(exclude_none=True))


def _explanation() -> dict[str, Any]:
    return {
        "method": "shap",
        "model": _MODEL,
        "window_id": f"{_ENVELOPE['pod']['uid']}/-/time:1s/7",
        "score": 0.97,
        "threshold": 0.5,
        "miner": True,
        "base_value": -1.2,
        "contributions": [
            {
                "feature": "freq_nocheap.sched_yield",
                "label": "sched_yield share of calls (excluding cheap calls)",
                "value": 0.41,
                "baseline": 0.01,
                "contribution": 1.7,
                "direction": "toward_miner",
                "text": "sched_yield is 41% of calls, benign pods: < 1%",
            }
        ],
        "summary": "The model scores this window 0.97 (threshold 0.50): sched_yield dominates.",
        "params": {"unit": "log-odds", "background": 100, "exact": True},
        "cost_ms": 12.5,
    }


MESSAGE_SEEDS = {
    "syscalls": (_batch, _drop),
    "windows": (_window,),
    "verdicts": (_verdict,),
    "alerts": (_finding,),
    "explanations": (_explanation,),
}


@cache
def message_seeds(topic: str) -> list[dict[str, Any]]:
    return [make() for make in MESSAGE_SEEDS[topic]]
