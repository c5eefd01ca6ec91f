"""The featurizer worker (its own process, the real broker) against poison and its own failures:

* a window that cannot be encoded is dead-lettered (``encode_error``, with the stream's identity) while
  every other pod's windows flow, exactly as offline, and the worker stays alive (the failure is
  simulated by monkeypatching ``vectorize_many`` in ``tests.featurizer.faulty_worker``: since the
  feature library's cheap-syscalls bug was fixed, no real input triggers one);
* the real case of issue 13: a pod making only ``getppid`` beside ordinary pods: all windows flow;
* a message the engine raises on (against its contract; simulated) is dead-lettered as ``internal_error``;
* ``/healthz`` goes 503 with a reason when a flush stalls or the featurize agent's task is gone;
* SIGTERM stops the worker in every phase of its life within 10 s, with exit status 0; a worker that
  cannot finish its graceful stop (a message consumed but never acknowledged) is ended by the watchdog.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from minerlens_core.schemas import Envelope, PodRef, SyscallBatch
from minerlens_core.syscalls import Arch, syscall_number

from tests.featurizer.streams import assert_same, offline, replay
from tests.featurizer.test_live import TRACES, Run, Worker, _exactly_once, _in_order_per_pod, _spec

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(180)]

FAULTY = [sys.executable, "-m", "tests.featurizer.faulty_worker"]


def _cheap_batches(uid: str, node: str, start_ns: int, end_ns: int, per_batch: int = 2000) -> list[SyscallBatch]:
    """A pod calling only getppid (a noise-injecting miner's loop), one batch per 0.5 s of event time."""
    nr = syscall_number("getppid", Arch.X86_64)
    assert nr is not None
    out, step = [], 500_000_000
    for seq, t in enumerate(range(start_ns, end_ns, step)):
        dt = [i * (step // per_batch) for i in range(per_batch)]
        out.append(
            SyscallBatch(
                envelope=Envelope(node=node, pod=PodRef(uid=uid, namespace="noise", name="getppid-loop")),
                source="replay", arch=Arch.X86_64, seq=seq, start_ns=t, end_ns=t + step - 1,
                nr=[nr] * per_batch, tid=[4242] * per_batch, dt_ns=dt,
            )
        )  # fmt: skip
    return out


def _impossible(batch: SyscallBatch) -> bytes:
    """Schema-valid JSON whose timestamps lie in the year 2200: no collector can produce them."""
    doc = json.loads(batch.model_dump_json())
    doc["start_ns"] = 7_258_118_400 * 10**9
    doc["end_ns"] = doc["start_ns"] + 10**9
    return json.dumps(doc).encode()


def _wait_log(w: Worker, needle: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while needle not in w.log.read_text(errors="replace"):
        assert w.proc.poll() is None, w.tail()
        assert time.monotonic() < deadline, f"{needle!r} not logged\n{w.tail()}"
        time.sleep(0.05)


def _healthz_503(w: Worker, timeout_s: float) -> tuple[float, dict]:
    """Seconds until /healthz answers 503, and its body."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        status, body = w.get("/healthz")
        if status == 503:
            return time.monotonic() - t0, json.loads(body)
        assert status == 200, body
        time.sleep(0.25)
    raise AssertionError(f"/healthz still 200 after {timeout_s} s: {w.get('/healthz')}\n{w.tail()}")


def test_unencodable_window_is_dead_lettered_and_other_pods_flow(tmp_path: Path) -> None:
    run = Run(tmp_path, partitions=1)  # one partition: the poison pod shares it with every other pod
    spec = _spec()
    pods, batches = replay(TRACES, node="node-live", start_ns=time.time_ns())
    want = offline(pods, spec, start_ns=pods[0].batches[0].start_ns)
    poison = pods[2].uid  # its windows fail to encode (simulated)
    want_good = {wid: e for wid, e in want.items() if not wid.startswith(f"{poison}/")}
    want_poison = sorted(
        int(wid.split("/")[3]) for wid in want if wid.startswith(f"{poison}/")
    )  # <uid>/<c>/<policy>/<index>[/p<pid>]
    assert want_poison, "the poison pod must have windows"
    garbage = (b"pod-x", b"\x00\xff not a batch")
    impossible = (pods[0].uid.encode(), _impossible(pods[0].batches[0]))
    raising = (b"engine-bomb", pods[0].batches[0].model_dump_json().encode())
    worker = run.worker("w1", FAULTY, MINERLENS_TEST_FAULT=f"encode:{poison},engine:engine-bomb")
    try:
        worker.wait_ready()
        t0 = time.monotonic()
        run.publish([garbage, impossible, raising, *batches])
        windows, dead = run.collect(set(want_good), dlq_at_least=3 + len(want_poison))
        flowed_s = time.monotonic() - t0
        status, health = worker.get("/healthz")
        assert worker.proc.poll() is None, worker.tail()
        encode_errors = worker.metric('minerlens_featurizer_dead_letters_total{reason="encode_error"}')
    finally:
        run.stop_all()
    logs = "\n" + worker.tail()
    assert status == 200, (health, logs)
    got, repeats = _exactly_once(windows)
    assert repeats == 0, logs
    assert set(got) == set(want_good), logs  # not one window of the poison pod went out as a window
    assert_same(got, want_good)
    _in_order_per_pod(windows)
    reasons = Counter(dict(r.headers)["error.reason"] for r in dead)
    want_reasons = {b"undecodable": 1, b"impossible": 1, b"internal_error": 1, b"encode_error": len(want_poison)}
    assert reasons == want_reasons, (reasons, logs)
    letters = [r for r in dead if dict(r.headers)["error.reason"] == b"encode_error"]
    for r in letters:
        h = dict(r.headers)
        assert r.key == poison.encode()
        assert h["minerlens.pod_uid"] == poison.encode()
        assert h["minerlens.stream"].startswith(f"node-live/{poison}/".encode())
        assert h["source.topic"] == run.input.encode()
        assert h["error.class"] == b"IndexError"
        body = json.loads(r.value)
        assert body["kind"] == "undeliverable_window"
        assert body["pod"]["uid"] == poison
        assert body["count"] == len(body["syscalls"]) == len(body["tids"])
        assert body["truncated"] is False
    assert sorted(json.loads(r.value)["index"] for r in letters) == want_poison
    assert encode_errors == len(want_poison)
    print(f"\n{len(got)} windows of the good pods and {len(letters)} encode_error dead letters in {flowed_s:.1f} s")


def test_pod_with_only_cheap_syscalls_does_not_blind_the_others(tmp_path: Path) -> None:
    """Issue 13's crash loop, with real input: a getppid-only pod beside ordinary pods."""
    run = Run(tmp_path, partitions=1)
    spec = _spec()
    pods, batches = replay(TRACES[:2], node="node-live", start_ns=time.time_ns())
    want = offline(pods, spec, start_ns=pods[0].batches[0].start_ns)
    start = min(b.start_ns or 0 for b in batches)
    end = min(max(b.end_ns or 0 for b in p.batches) for p in pods)
    cheap = _cheap_batches("pod-getppid", "node-live", start, end)
    merged = sorted([*batches, *cheap], key=lambda b: (b.start_ns or 0, b.envelope.key, b.seq))
    worker = run.worker("w1")
    try:
        worker.wait_ready()
        t0 = time.monotonic()
        run.publish(merged)
        windows, dead = run.collect(set(want))
        flowed_s = time.monotonic() - t0
        alive = worker.proc.poll() is None
        status, _ = worker.get("/healthz")
    finally:
        run.stop_all()
    logs = "\n" + worker.tail()
    assert alive, logs
    assert status == 200, logs
    got, _ = _exactly_once(windows)
    others = {wid: fw for wid, fw in got.items() if not wid.startswith("pod-getppid/")}
    assert set(others) == set(want), logs
    assert_same(others, want)
    cheap_windows = [fw for wid, fw in got.items() if wid.startswith("pod-getppid/")]
    assert not dead, [dict(r.headers)["error.reason"] for r in dead]  # the feature fix: nothing dead-lettered
    assert cheap_windows, "the getppid pod itself gets windows (and verdicts)"
    assert all(fw.count > 0 for fw in cheap_windows if fw.complete)
    print(f"\n{len(others)} windows of the ordinary pods, {len(cheap_windows)} of the getppid pod, in {flowed_s:.1f} s")


def test_healthz_fails_when_a_flush_stalls(tmp_path: Path) -> None:
    run = Run(tmp_path, partitions=1)
    pods, batches = replay(TRACES[:2], node="node-live", start_ns=time.time_ns())
    worker = run.worker(
        "w1", FAULTY, MINERLENS_TEST_FAULT=f"stall:{pods[1].uid}", MINERLENS_FEATURIZER_STALL_TIMEOUT_S="3"
    )
    try:
        worker.wait_ready()
        assert worker.get("/healthz")[0] == 200
        run.publish(batches)
        waited, body = _healthz_503(worker, timeout_s=60)
        assert worker.proc.poll() is None
    finally:
        run.stop_all()
    assert body["ok"] is False
    assert "no message handled for" in body["reason"], body
    assert body["held"] > 0 or body["lag"] > 0, body
    print(f"\n/healthz 503 {waited:.1f} s after the input arrived: {body['reason']}")


def test_healthz_fails_when_the_agent_is_gone_and_the_watchdog_ends_it(tmp_path: Path) -> None:
    run = Run(tmp_path, partitions=1)
    _, batches = replay(TRACES[:1], node="node-live", start_ns=time.time_ns())
    worker = run.worker(
        "w1", FAULTY, MINERLENS_TEST_FAULT="exit:exit-here", MINERLENS_FEATURIZER_SHUTDOWN_TIMEOUT_S="4"
    )
    try:
        worker.wait_ready()
        run.publish([*batches[:5], (b"exit-here", b"{}"), *batches[5:]])
        waited, body = _healthz_503(worker, timeout_s=60)
        # the message the agent died on is never acknowledged: Faust's graceful stop waits for it forever
        t0 = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        code = worker.proc.wait(timeout=15)
        took = time.monotonic() - t0
    finally:
        run.stop_all()
    assert "agent featurize has no running task" in body["reason"], body
    # Usually Faust's graceful stop hangs on the unacknowledged message and the watchdog ends the worker (exit 3,
    # EXIT_FORCED); when Faust happens to acknowledge it first (seen on a loaded machine) the stop is clean (0).
    # Either way the worker is gone within the shutdown timeout plus a margin: it never hangs.
    assert code in (0, 3), worker.tail()
    assert took < 8, took
    if code == 3:
        assert took >= 4, took
        assert "did not stop within 4 s" in worker.tail()
    print(f"\n/healthz 503 {waited:.1f} s after the agent's end: {body['reason']}; exit {code} after {took:.1f} s")


@pytest.mark.parametrize(
    ("phase", "needle", "then_s"),
    [
        ("starting", "featurizer test-", 0.0),  # the app is built, Faust is starting
        ("recovering", "Recovery]: Starting", 0.0),  # the state table is being recovered
        ("busy", None, 0.5),  # ready, with a backlog being windowed
    ],
)
def test_sigterm_stops_the_worker(tmp_path: Path, phase: str, needle: str | None, then_s: float) -> None:
    run = Run(tmp_path, partitions=2)
    _, batches = replay(TRACES, node="node-live", start_ns=time.time_ns())
    run.publish(batches)  # input waiting in every phase
    worker = run.worker(phase)
    try:
        if needle is None:
            worker.wait_ready()
        else:
            _wait_log(worker, needle)
        time.sleep(then_s)
        t0 = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        code = worker.proc.wait(timeout=10)
        took = time.monotonic() - t0
    finally:
        run.stop_all()
    assert code == 0, worker.tail()
    print(f"\nSIGTERM while {phase}: exit {code} after {took:.2f} s")
