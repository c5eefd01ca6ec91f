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
SAMPLE_TRACES = ROOT / "data" / "sample-v1" / "traces"

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

    doc: dict[str, Any] = json.loads(make_finding().model_dump_json(exclude_none=True))
    return doc


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


# --- featurizer: sequences of syscall-topic messages of two pods --------------------------------------

T0 = 1_767_225_600_000_000_000  # 2026-01-01, as the topic seeds above
POD_A = {"uid": "5b0c1f0e-8f7e-4c1e-9a0b-2d6f1e3c4a5b", "namespace": "shop", "name": "web-0"}
POD_B = {"uid": "0d9e2c4b-1a2b-4c3d-8e9f-a0b1c2d3e4f5", "namespace": "ci", "name": "build-7"}


def _env(pod: dict[str, str] | None, at_ns: int) -> dict[str, Any]:
    from datetime import UTC, datetime

    at = datetime.fromtimestamp(at_ns / 1e9, UTC).isoformat().replace("+00:00", "Z")
    env: dict[str, Any] = {"cluster": "prod-eu", "node": "node-a", "container_id": "", "observed_at": at}
    return env if pod is None else {**env, "pod": pod}


def pod_batch(pod: dict[str, str], seq: int, start_ns: int | None, n: int = 10, step_ns: int = 90_000_000) -> str:
    """A collector batch of ``n`` syscalls of pod ``pod`` (two threads, one of them ``xmrig``); no times: order only."""
    nr = [(24, 202, 0, 1, 9, 11, 228, 202)[(seq + i) % 8] for i in range(n)]
    body: dict[str, Any] = {
        "kind": "syscall_batch", "source": "tracefs", "arch": "x86_64", "seq": seq, "nr": nr,
        "tid": [100 + (i % 2) for i in range(n)],
        "tasks": [{"tid": 100, "pid": 100, "comm": "xmrig"}, {"tid": 101, "pid": 100, "comm": "worker"}],
    }  # fmt: skip
    if start_ns is not None:
        body |= {"start_ns": start_ns, "end_ns": start_ns + (n - 1) * step_ns, "dt_ns": [i * step_ns for i in range(n)]}
    end = start_ns + n * step_ns if start_ns is not None else T0 + seq * 10**9
    return json.dumps({**body, "envelope": _env(pod, end)}, separators=(",", ":"))


def pod_drop(pod: dict[str, str] | None, lost: int, at_ns: int) -> str:
    reason = "spool_overflow" if pod else "ring_buffer_overrun"
    body = {"kind": "drop_report", "source": "spool" if pod else "tracefs", "reason": reason, "lost_events": lost}
    return json.dumps({**body, "envelope": _env(pod, at_ns)}, separators=(",", ":"))


def pod_sample(pod: dict[str, str], at_ns: int, cpu_s: float) -> str:
    procs = [{"pid": 100, "comm": "xmrig", "cpu_ns": round(cpu_s * 1e9), "threads": 2, "running": 2}]
    sample = {"ts_ns": at_ns, "cpu_ns": round(cpu_s * 1e9), "threads": 2, "processes": procs}
    body = {"kind": "resource_sample", "envelope": _env(pod, at_ns), "sample": sample}
    return json.dumps(body, separators=(",", ":"))


def featurizer_seeds() -> list[tuple[int, list[str]]]:
    """(flags, messages) of valid sequences (``tests/fuzz/featurizer_target.py`` says what the flags do)."""
    from tests.fuzz.featurizer_target import EVERY, FLUSH, REDELIVER, RESTART, TICK, TWO_PARTITIONS

    s = 10**9
    # pod A's seq 4 is missing: a gap counted as loss
    two_pods = [
        pod_batch(POD_A, 1, T0), pod_batch(POD_B, 1, T0 + s // 10), pod_batch(POD_A, 2, T0 + s),
        pod_batch(POD_B, 2, T0 + 11 * s // 10), pod_batch(POD_A, 3, T0 + 2 * s),
        pod_batch(POD_A, 5, T0 + 3 * s), pod_batch(POD_B, 3, T0 + 31 * s // 10),
    ]  # fmt: skip
    # a pod-level and a node-wide drop report, resource samples; pod A's batch 2 is resent
    losses = [
        pod_batch(POD_A, 1, T0), pod_drop(POD_A, 40, T0 + s // 2), pod_sample(POD_A, T0 + s // 2, 0.9),
        pod_batch(POD_A, 2, T0 + s), pod_drop(None, 7, T0 + s), pod_batch(POD_B, 1, T0 + s),
        pod_batch(POD_A, 2, T0 + s), pod_sample(POD_A, T0 + 3 * s // 2, 1.9), pod_batch(POD_A, 3, T0 + 2 * s),
    ]  # fmt: skip
    order_only = [pod_batch(POD_A, k, None, n=30) for k in range(1, 5)] + [pod_batch(POD_B, 1, None, n=30)]
    processes = [pod_sample(POD_A, T0, 0.0)]
    for k in range(1, 5):
        processes += [pod_batch(POD_A, k, T0 + k * s // 2, n=8), pod_sample(POD_A, T0 + k * s // 2 + 1, k * 0.9)]
    return [
        (RESTART | FLUSH | TWO_PARTITIONS, two_pods),
        (TICK | RESTART | EVERY, two_pods),
        (EVERY | TICK | REDELIVER | FLUSH, losses),
        (RESTART | TWO_PARTITIONS | REDELIVER, losses),
        (0x80 | RESTART | EVERY | FLUSH, order_only),
        (0xC0 | RESTART | TICK | FLUSH, processes),
    ]


# --- api: requests to the explainer, and the pods stored before them ------------------------------------

API_PODS = (("team-a", "miner-1", "miner-randomx-1t-yield-r1"), ("team-b", "gzip-1", "gzip-compress-r1"))
"""namespace, pod, sample trace: the miner pod has an open alert, the other only verdicts."""


@cache
def api_windows(namespace: str, pod: str) -> list[Any]:
    """The first windows of the pod's sample trace as the featurizer publishes them for the shipped model."""
    from minerlens_core.models import VerifiedManifest

    from tests.explainer.factory import feature_windows, pod_ref
    from tests.fuzz.api_target import MODELS

    trace = next(t for ns, p, t in API_PODS if (ns, p) == (namespace, pod))
    spec = VerifiedManifest(MODELS[0]).spec
    return feature_windows(SAMPLE_TRACES / f"{trace}.parquet", spec, pod_ref(namespace, pod), limit=6)


@cache
def api_pods() -> list[tuple[str, bytes]]:
    """(topic: windows, verdicts or alerts; message) that store the pods of ``API_PODS``."""
    from minerlens_core.models import VerifiedManifest

    from tests.explainer.factory import finding, pod_ref, verdict_for
    from tests.fuzz.api_target import MODELS

    model = VerifiedManifest(MODELS[0]).ref
    out: list[tuple[str, bytes]] = []
    for i, (namespace, pod, _) in enumerate(API_PODS):
        windows = api_windows(namespace, pod)
        for k, w in enumerate(windows):
            out.append(("windows", w.model_dump_json().encode()))
            score = 0.9 - 0.1 * k if i == 0 else 0.05
            out.append(("verdicts", verdict_for(w, score, model, 0.21).model_dump_json().encode()))
        if i == 0:
            alert = finding(pod_ref(namespace, pod), "alert-fuzz-1", [w.window_id for w in windows[:2]])
            out.append(("alerts", alert.model_dump_json().encode()))
    return out


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@cache
def api_seeds() -> list[bytes]:
    """Valid requests of every route (``tests/fuzz/api_target.py`` says how an input is laid out)."""
    from tests.fuzz.api_target import unparse

    miner = api_windows("team-a", "miner-1")
    benign = api_windows("team-b", "gzip-1")
    features = [None if v is None else round(v, 4) for v in miner[0].features]
    window = json.loads(benign[1].model_dump_json())
    window["features"] = [None if v is None else round(v, 4) for v in window["features"]]
    window["sequence"] = window["sequence"][:48]
    sequence = miner[1].sequence[:64]
    js = {"content-type": "application/json"}
    return [
        unparse("GET", "/healthz", auth=3),
        unparse("GET", "/readyz", auth=3),
        unparse("GET", "/openapi.json", auth=3),
        unparse("GET", "/metrics"),
        unparse("GET", "/v1/pods"),
        unparse("GET", "/v1/pods?namespace=team-a&alerting=true"),
        unparse("GET", "/v1/pods/team-a/miner-1?limit=5"),
        unparse("GET", "/v1/pods/team-a/miner-1/explanation"),
        unparse("GET", "/v1/pods/team-b/gzip-1/explanation?method=lime&top=5"),
        unparse("GET", f"/v1/pods/team-a/miner-1/explanation?window={miner[2].window_id}&format=png&top=4"),
        unparse("GET", "/v1/pods/team-a/miner-1/explanation?method=lstm-ae&model=minerlens-lstm-ae"),
        unparse("GET", "/v1/models"),
        unparse("GET", "/v1/whoami", auth=2),
        unparse("POST", "/v1/explain", js, _json({"window": window})),
        unparse("POST", "/v1/explain?format=json", js, _json({"method": "lime", "features": features, "top": 3})),
        unparse("POST", "/v1/explain", js, _json({"method": "lstm-ae", "sequence": sequence, "window_id": "p/c/t/1"})),
        unparse("POST", "/v1/explain?format=png", js, _json({"features": features, "top": 5})),
        unparse("POST", "/v1/admin/cache/purge?model=minerlens-xgboost", auth=2),
        unparse("POST", "/v1/admin/models/reload", auth=2),
        unparse("GET", "/v1/pods", {"authorization": "Bearer not-a-token"}, auth=3),
        unparse("POST", "/v1/admin/models/reload"),
    ]
