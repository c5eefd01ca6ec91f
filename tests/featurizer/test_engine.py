"""The featurizer engine (no Kafka, no Faust): restarts, duplicates, gaps, drop reports, watermarks,
idle streams and bad messages. The state table is a dict; ``EngineRun.checkpoint`` does what a
flush does (deliver windows, then persist the state writes)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from minerlens_core.features import FeatureSpec, WindowPolicy
from minerlens_core.features.windows import Cols
from minerlens_core.schemas import DropReport, Envelope, PodRef, SyscallBatch
from minerlens_core.schemas.windows import decode_window
from minerlens_featurizer.control import NodeLoss, decode_control
from minerlens_featurizer.encode import utc_from_ns
from minerlens_featurizer.settings import FeaturizerSettings
from minerlens_featurizer.state import (
    HEADER_PREFIX,
    SEGMENT_PREFIX,
    Segment,
    decode_segment,
    encode_segment,
    load_header,
)

from tests.featurizer.streams import FAR_FUTURE, T0, EngineRun, per_pod, replay

TRACES = ["miner-randomx-1t-yield-r1", "gzip-compress-r1", "idle-cron-r1"]
POLICIES = {
    "time-1s": WindowPolicy.time(1.0),
    "count-200": WindowPolicy.count(200),
    "sliding-64/16": WindowPolicy.count(64, stride=16),
    "gapped-50/80": WindowPolicy.count(50, stride=80),
}
MS = 1_000_000


def batch(
    seq: int,
    start_ns: int | None,
    n: int = 50,
    *,
    pod: str = "p1",
    node: str = "n1",
    container: str = "",
    step_ns: int = MS,
    lost_before: int = 0,
) -> SyscallBatch:
    rng = np.random.default_rng(seq)
    dt = None if start_ns is None else [i * step_ns for i in range(n)]
    return SyscallBatch(
        envelope=Envelope(node=node, pod=PodRef(uid=pod, namespace="ns", name=pod), container_id=container),
        source="replay",
        arch="x86_64",
        seq=seq,
        start_ns=start_ns,
        end_ns=None if start_ns is None else start_ns + (n - 1) * step_ns,
        nr=rng.integers(0, 300, n).tolist(),
        tid=rng.integers(100, 104, n).tolist(),
        dt_ns=dt,
        lost_before=lost_before,
    )


def raw(b: SyscallBatch | DropReport) -> bytes:
    return b.model_dump_json().encode()


def spec_of(policy: WindowPolicy) -> FeatureSpec:
    return FeatureSpec.build(window=policy)


@pytest.mark.parametrize("policy", list(POLICIES.values()), ids=list(POLICIES))
def test_restart_anywhere_gives_the_same_window_bytes(settings: FeaturizerSettings, policy: WindowPolicy) -> None:
    _, batches = replay(TRACES, max_events=700, max_age_s=0.3)
    reference = EngineRun(spec_of(policy), settings)
    reference.feed_batches(batches, checkpoint_every=3)
    reference.tick(FAR_FUTURE)
    reference.checkpoint()
    assert len(reference.out) > 20

    for cut in (1, len(batches) // 3, len(batches) - 2):
        run = EngineRun(spec_of(policy), settings)
        run.feed_batches(batches[:cut], checkpoint_every=3)
        run.checkpoint()  # graceful stop: everything delivered and persisted
        run.restart()
        run.feed_batches(batches[cut:], checkpoint_every=3)
        run.tick(FAR_FUTURE)
        run.checkpoint()
        assert per_pod(run.out) == per_pod(reference.out), f"restart after message {cut} changed the windows"
        assert run.engine.metrics.restored._value.get() > 0


def test_crash_between_delivery_and_persist_replays_identical_windows(
    settings: FeaturizerSettings, artifact_spec: FeatureSpec
) -> None:
    """committed offset <= persisted state <= delivered windows: replay loses nothing, repeats byte-identically."""
    _, batches = replay(TRACES, max_events=700, max_age_s=0.3)
    reference = EngineRun(artifact_spec, settings)
    reference.feed_batches(batches)
    reference.tick(FAR_FUTURE)
    reference.checkpoint()

    committed, persisted, delivered = 10, 25, 40
    run = EngineRun(artifact_spec, settings)
    run.feed_batches(batches[:persisted], checkpoint_every=1)
    snapshot = dict(run.store)
    run.feed_batches(batches[persisted:delivered], checkpoint_every=1)  # windows delivered, then the crash:
    run.store.clear()
    run.store.update(snapshot)  # ... so their state writes never reached the changelog
    run.restart()
    run.feed_batches(batches[committed:], offset=committed)  # Kafka redelivers from the committed offset
    run.tick(FAR_FUTURE)
    run.checkpoint()

    first: dict[str, bytes] = {}
    repeats = 0
    for value in run.out:
        wid = decode_window(value).window_id
        if wid in first:
            assert value == first[wid], f"{wid} repeated with different content"
            repeats += 1
        first.setdefault(wid, value)
    assert sorted(first.values()) == sorted(reference.out)
    assert repeats > 0  # the windows of messages 25..40 were emitted twice, identically
    assert run.engine.metrics.replayed._value.get() == persisted - committed  # already in the state: skipped


def test_resent_batches_are_dropped_and_counted(settings: FeaturizerSettings, count_spec: FeatureSpec) -> None:
    run = EngineRun(count_spec, settings)
    bs = [batch(i, T0 + i * 60 * MS, n=60) for i in range(10)]
    for b in bs[:6]:
        run.feed(raw(b))
    run.feed(raw(bs[4]))  # the collector's spool resends its head
    run.feed(raw(bs[5]))
    for b in bs[6:]:
        run.feed(raw(b))
    run.checkpoint()
    assert run.engine.metrics.duplicates._value.get() == 2
    assert [w.index for w in run.windows()] == [0, 1, 2]  # 600 events, windows of 200: no double counting
    assert sum(w.count for w in run.windows()) == 600


def test_seq_gap_and_lost_before_are_loss_in_the_next_window(
    settings: FeaturizerSettings, count_spec: FeatureSpec
) -> None:
    run = EngineRun(count_spec, settings)
    run.feed(raw(batch(0, T0, n=150)))
    run.feed(raw(batch(4, T0 + 200 * MS, n=150)))  # seq 1..3 never arrived
    run.feed(raw(batch(5, T0 + 400 * MS, n=150, lost_before=7)))
    run.checkpoint()
    windows = run.windows()
    assert [w.lost_events for w in windows] == [3, 7]
    assert run.engine.metrics.seq_gaps._value.get() == 3
    assert [w.first_seq for w in windows] == [0, 4]


def test_collector_restart_resets_seq(settings: FeaturizerSettings, count_spec: FeatureSpec) -> None:
    run = EngineRun(count_spec, settings)
    for i in range(3):
        run.feed(raw(batch(i, T0 + i * 100 * MS, n=100)))
    for i in range(3):  # a new collector process: seq from 0 again, with newer events
        run.feed(raw(batch(i, T0 + (10_000 + i * 100) * MS, n=100)))
    run.checkpoint()
    assert run.engine.metrics.seq_resets._value.get() == 1
    assert run.engine.metrics.duplicates._value.get() == 0
    assert sum(w.count for w in run.windows()) == 600


def drop(lost: int, *, pod: str | None, node: str = "n1", reason: str = "spool_overflow", n: int = 0) -> DropReport:
    return DropReport(
        envelope=Envelope(node=node, pod=PodRef(uid=pod) if pod else None),
        source="spool" if reason == "spool_overflow" else "tracefs",
        reason=reason,  # type: ignore[arg-type]
        lost_events=lost,
        interval_end_ns=T0 + n,
    )


def test_drop_reports_are_carried_into_the_next_window(settings: FeaturizerSettings, count_spec: FeatureSpec) -> None:
    run = EngineRun(count_spec, settings)
    run.feed(raw(drop(11, pod="p1")))  # before the pod has a stream: waits for it
    run.feed(raw(batch(0, T0, n=150)))
    report = raw(drop(5, pod="p1", n=1))
    run.feed(report)
    run.feed(report)  # the collector resent it: ignored
    run.feed(raw(batch(1, T0 + 150 * MS, n=150)))  # closes window 0: it carries 11 + 5
    run.feed(raw(drop(40, pod=None, reason="ring_buffer_overrun")))  # node-wide: this partition's streams take it
    run.checkpoint()
    assert len(run.control) == 1  # and a copy goes to every other partition
    node_loss = decode_control(run.control[0])
    assert isinstance(node_loss, NodeLoss)
    assert (node_loss.node, node_loss.lost_events) == ("n1", 40)
    run.engine.on_control(run.control[0], 1)  # another partition's copy: no stream of n1 there
    run.feed(raw(batch(2, T0 + 300 * MS, n=150)))
    run.checkpoint()
    assert [w.lost_events for w in run.windows()] == [16, 40]
    assert run.engine.metrics.duplicates._value.get() == 1


def test_redelivered_messages_already_in_the_state_are_skipped(
    settings: FeaturizerSettings, count_spec: FeatureSpec
) -> None:
    """After a crash Kafka redelivers from the committed offset: drop reports and poison are not applied twice."""
    run = EngineRun(count_spec, settings)
    messages = [raw(batch(0, T0, n=150)), raw(drop(5, pod="p1")), b"poison", raw(batch(1, T0 + 150 * MS, n=150))]
    for offset, m in enumerate(messages[:3]):
        run.feed(m, offset=offset)
    run.checkpoint()  # state persisted up to offset 2, but the committed offset was still 0
    run.restart()
    for offset, m in enumerate(messages):
        run.feed(m, offset=offset)
    run.checkpoint()
    assert [w.lost_events for w in run.windows()] == [5]
    assert len(run.dead) == 1
    assert run.engine.metrics.replayed._value.get() == 3


def test_input_offsets_never_delivered_are_counted(settings: FeaturizerSettings, count_spec: FeatureSpec) -> None:
    """A consumer that drops a message (faust#596) leaves a hole in the partition's offsets: counted, with the
    batch itself showing up as a seq gap (loss in the next window); a restart on the state counts across."""
    run = EngineRun(count_spec, settings)
    batches = [batch(i, T0 + i * 50 * MS) for i in range(6)]
    run.feed(raw(batches[0]), offset=10)  # the first message after an empty state: nothing to compare with
    run.feed(raw(batches[1]), offset=11)
    run.feed(raw(batches[3]), offset=13)  # offset 12 (seq 2) never arrived
    run.checkpoint()
    skipped = run.engine.metrics.offset_gaps
    assert skipped._value.get() == 1
    assert run.engine.metrics.seq_gaps._value.get() == 1
    run.restart()
    run.feed(raw(batches[5]), offset=15)  # resumes from the stored offset 13: 14 is missing
    run.checkpoint()
    assert run.engine.metrics.offset_gaps._value.get() == 1
    run.feed(raw(batches[5]), offset=15)  # a redelivery is not a gap
    assert run.engine.metrics.offset_gaps._value.get() == 1
    assert run.engine.metrics.replayed._value.get() == 1


def test_pending_loss_survives_a_restart(settings: FeaturizerSettings, count_spec: FeatureSpec) -> None:
    run = EngineRun(count_spec, settings)
    run.feed(raw(drop(9, pod="p2")))
    run.feed(raw(batch(0, T0, n=150)))
    run.feed(raw(drop(4, pod="p1")))
    run.checkpoint()
    run.restart()
    run.feed(raw(batch(1, T0 + 150 * MS, n=100)))
    run.feed(raw(batch(0, T0, n=250, pod="p2")))
    run.checkpoint()
    assert {(w.envelope.pod.uid, w.lost_events) for w in run.windows() if w.envelope.pod} == {("p1", 4), ("p2", 9)}


def test_watermark_closes_quiet_streams_of_the_node(settings: FeaturizerSettings, time_spec: FeatureSpec) -> None:
    run = EngineRun(time_spec, settings)
    sec = 1_000 * MS
    run.feed(raw(batch(0, T0 + 100 * MS, n=10, pod="quiet")))  # slot T0 .. T0+1s, then silence
    for i in range(6):  # a busy neighbour on the same node advances the node's watermark
        run.feed(raw(batch(i, T0 + i * sec, n=10, pod="busy")))
    run.checkpoint()
    assert not [w for w in run.windows() if w.envelope.pod and w.envelope.pod.uid == "quiet"]
    run.tick(wall=0.0)  # busy's latest batch ends ~T0+5s; grace 3 s -> watermark ~T0+2s closes quiet's slot
    run.checkpoint()
    quiet = [w for w in run.windows() if w.envelope.pod and w.envelope.pod.uid == "quiet"]
    assert [(w.index, w.count, w.complete) for w in quiet] == [((T0 + 100 * MS) // sec, 10, False)]
    assert quiet[0].end_ns is not None
    assert quiet[0].envelope.observed_at == utc_from_ns(quiet[0].end_ns)  # deterministic: replays give equal bytes


def test_other_partitions_progress_counts_only_when_caught_up(
    settings: FeaturizerSettings, time_spec: FeatureSpec
) -> None:
    run = EngineRun(time_spec, settings)
    sec = 1_000 * MS
    run.feed(raw(batch(0, T0 + 100 * MS, n=10, pod="quiet")), partition=1)
    run.checkpoint()
    marks = {"n1": T0 + 10 * sec}  # another worker's tick: node n1 is at T0+10s
    run.tick(wall=0.0, partition=1, marks=marks, caught_up=False)  # partition 1 replays a backlog
    run.checkpoint()
    assert run.windows() == []
    run.tick(wall=0.0, partition=1, marks=marks, caught_up=True)
    run.checkpoint()
    assert [w.count for w in run.windows()] == [10]


def test_idle_stream_is_retired_and_never_reuses_a_window_id(
    settings: FeaturizerSettings, count_spec: FeatureSpec
) -> None:
    run = EngineRun(count_spec, settings, clock=lambda: 1000.0)
    for i in range(9):
        run.feed(raw(batch(i, T0 + i * 50 * MS, n=50)))  # 450 events: windows 0, 1; 50 left (< min_fill 100)
    run.checkpoint()
    run.tick(wall=1000.0 + settings.idle_timeout_s + 1)
    run.checkpoint()
    assert run.engine.metrics.retired._value.get() == 1
    assert ("p1", "") not in run.engine.streams
    assert not [k for k in run.store if k.startswith(SEGMENT_PREFIX)], "a retired stream keeps no events"
    run.restart()  # the retired stream's numbering survives restarts too
    for i in range(9, 15):
        run.feed(raw(batch(i, T0 + 10**12 + i * 50 * MS, n=50)))
    run.checkpoint()
    ids = [w.index for w in run.windows()]
    assert ids == [0, 1, 3]  # resumes past the abandoned window 2's stride
    assert max(Counter(w.window_id for w in run.windows()).values()) == 1
    run.tick(wall=1000.0 + settings.idle_timeout_s + settings.retired_ttl_s + 10**6)
    run.checkpoint()
    run.tick(wall=1000.0 + settings.idle_timeout_s + settings.retired_ttl_s + 2 * 10**6)
    run.checkpoint()
    assert not [k for k in run.store if k.startswith(HEADER_PREFIX)], "retired state expires after retired_ttl_s"


def test_idle_time_stream_flushes_its_last_slot_once(settings: FeaturizerSettings, time_spec: FeatureSpec) -> None:
    run = EngineRun(time_spec, settings, clock=lambda: 1000.0)
    run.feed(raw(batch(0, T0 + 100 * MS, n=10)))
    run.feed(raw(batch(1, T0 + 1_200 * MS, n=10)))
    run.tick(wall=1000.0 + settings.idle_timeout_s + 1)
    run.feed(raw(batch(2, T0 + 1_500 * MS, n=10)))  # late batch for the flushed slot: goes to the next one
    run.tick(wall=1000.0 + 2 * settings.idle_timeout_s + 2)
    run.checkpoint()
    ids = [w.window_id for w in run.windows()]
    assert len(ids) == len(set(ids)) == 3
    assert [w.count for w in run.windows()] == [10, 10, 10]


def test_state_of_another_feature_spec_is_discarded(settings: FeaturizerSettings, count_spec: FeatureSpec) -> None:
    run = EngineRun(count_spec, settings)
    run.feed(raw(batch(0, T0, n=150)))
    run.checkpoint()
    other = EngineRun(FeatureSpec.build(window=WindowPolicy.count(100)), settings, store=run.store)
    other.feed(raw(batch(1, T0 + 150 * MS, n=150)), offset=1)
    other.checkpoint()
    assert other.engine.metrics.discarded._value.get() == 1
    assert [w.count for w in other.windows()] == [100]  # started afresh: only the new batch's events


def test_state_is_compact_and_holds_only_buffered_events(settings: FeaturizerSettings, time_spec: FeatureSpec) -> None:
    run = EngineRun(time_spec, settings)
    _, batches = replay(["gzip-compress-r1"], max_events=512)
    run.feed_batches(batches[:40], checkpoint_every=4)
    run.checkpoint()
    headers = {k: load_header(v) for k, v in run.store.items() if k.startswith(HEADER_PREFIX)}
    (h,) = headers.values()
    segments = [v for k, v in run.store.items() if k.startswith(SEGMENT_PREFIX)]
    events = sum(len(decode_segment(v)[2]) for v in segments)
    assert sum(len(v) for v in segments) < 35 * max(events, 1)  # 19 bytes an event + a small header
    assert events >= h.core["seen"] - h.core["base"]
    assert events - (h.core["seen"] - h.core["base"]) < 512  # at most one partly consumed segment
    assert len(json.dumps(h.model_dump())) < 2000


def test_segment_codec_round_trip() -> None:
    cols = Cols(
        np.array([1, 2, 363], np.int16),
        np.array([5, 6, 2**31 - 1], np.int32),
        np.array([-1, T0, T0 + 1], np.int64),
        np.array([5, 5, 2**31 - 1], np.int32),
        np.array([-1, 2, 6], np.int8),
    )
    start, seq, back = decode_segment(encode_segment(Segment(3, 100, 3, 7), cols))
    assert (start, seq) == (100, 7)
    for name in ("ids", "tids", "ts", "pids", "fdk"):
        assert np.array_equal(getattr(back, name), getattr(cols, name))
        assert getattr(back, name).dtype == getattr(cols, name).dtype
    for cut in (encode_segment(Segment(3, 100, 3, 7), cols)[:-1], b"", b"\x02" * 5):
        with pytest.raises(ValueError, match="segment"):
            decode_segment(cut)


def _envelope(**changes: object) -> dict[str, object]:
    body = json.loads(raw(batch(0, T0)))
    body.update(changes)
    return body


BAD = {
    "undecodable-text": (b"certainly not json", "undecodable"),
    "undecodable-empty": (b"", "undecodable"),
    "undecodable-array": (b"[1, 2, 3]", "undecodable"),
    "schema-version": (
        json.dumps(_envelope(envelope={"schema_version": 2, "node": "n1", "pod": {"uid": "p1"}})).encode(),
        "schema_version",
    ),
    "unknown-arch": (json.dumps(_envelope(arch="mips")).encode(), "unknown_arch"),
    "unknown-kind": (json.dumps(_envelope(kind="heartbeat")).encode(), "unknown_kind"),
    "column-mismatch": (json.dumps(_envelope(tid=[1])).encode(), "invalid"),
    "negative-nr": (json.dumps(_envelope(nr=[-1] * 50)).encode(), "invalid"),
    "tid-beyond-int32": (
        json.dumps(_envelope(tid=[2**40] * 50)).encode(),
        "invalid",
    ),  # the contract bounds tids (int32)
    "seq-beyond-int64": (json.dumps(_envelope(seq=2**63)).encode(), "invalid"),
    "boot-relative-clock": (json.dumps(_envelope(start_ns=12_345, end_ns=10**9)).encode(), "impossible"),
    "far-future": (json.dumps(_envelope(start_ns=T0 * 2, end_ns=T0 * 2 + 10**9)).encode(), "impossible"),
    "dt-after-end": (json.dumps(_envelope(end_ns=T0 + 1)).encode(), "impossible"),
    "no-timestamps": (raw(batch(0, None)), "no_timestamps"),
}


@pytest.mark.parametrize(("value", "reason"), list(BAD.values()), ids=list(BAD))
def test_bad_messages_are_dead_lettered_and_processing_goes_on(
    settings: FeaturizerSettings, time_spec: FeatureSpec, value: bytes, reason: str
) -> None:
    run = EngineRun(time_spec, settings)
    run.feed(raw(batch(0, T0, n=20)))
    run.feed(value)
    run.feed(raw(batch(1, T0 + 2_000 * MS, n=20)))
    run.checkpoint()
    assert [d.reason for d in run.dead] == [reason]
    assert run.dead[0].value == value
    assert run.dead[0].offset == 1
    assert [w.count for w in run.windows()] == [20]  # the good batches still make their window


def test_too_large_batch_is_dead_lettered(time_spec: FeatureSpec, tmp_path) -> None:
    run = EngineRun(time_spec, FeaturizerSettings(max_batch_events=10, data_dir=tmp_path))
    run.feed(raw(batch(0, T0, n=11)))
    run.checkpoint()
    assert [d.reason for d in run.dead] == ["too_large"]


# --- resource samples and per-process windows -----------------------------------------------------


def _sample(t_ns: int, cpu_a: float, cpu_b: float) -> bytes:
    from minerlens_core.schemas import ProcessSample, ResourceSample, ResourceSnapshot

    procs = [
        ProcessSample(pid=100, comm="nginx", cpu_ns=round(cpu_a * 1e9), threads=1, running=0),
        ProcessSample(pid=102, comm="kworker-x", cpu_ns=round(cpu_b * 1e9), threads=2, running=2),
    ]
    snap = ResourceSnapshot(ts_ns=t_ns, cpu_ns=round((cpu_a + cpu_b) * 1e9), threads=3, processes=procs)
    env = Envelope(node="n1", pod=PodRef(uid="p1", namespace="ns", name="p1"))
    return ResourceSample(envelope=env, sample=snap).model_dump_json().encode()


def _mixed_pod(seconds: int) -> list[bytes]:
    """nginx (pid 100) busy with syscalls at 0.1 core; a hidden hasher (pid 102, 2 threads) at 2 cores,
    one syscall every 4 s; a sample every second, sent before the batch of the next second."""
    from minerlens_core.schemas import TaskInfo

    out: list[bytes] = []
    for k in range(seconds):
        out.append(_sample(T0 + k * 1000 * MS + 500 * MS, 0.1 * k, 2.0 * k))
        b = batch(k, T0 + k * 1000 * MS, n=40, step_ns=20 * MS)
        tids = [100] * 40
        if k % 4 == 1:
            tids[-1] = 103  # the hasher's network thread
        tasks = [TaskInfo(tid=100, pid=100, comm="nginx"), TaskInfo(tid=103, pid=102, comm="kworker-x")]
        out.append(raw(b.model_copy(update={"tid": tids, "tasks": tasks})))
    return out


def test_samples_give_cpu_only_and_per_process_windows_that_survive_restarts(settings: FeaturizerSettings) -> None:
    spec = FeatureSpec.build(WindowPolicy(kind="time", seconds=2.0, per_process=True))
    msgs = _mixed_pod(12)
    reference = EngineRun(spec, settings)
    for m in msgs:
        reference.feed(m)
    reference.feed(msgs[4])  # a resent sample and batch change nothing
    reference.feed(msgs[5])
    reference.tick(FAR_FUTURE)
    reference.checkpoint()
    windows = [decode_window(v) for v in reference.out]
    hidden = [w for w in windows if w.scope == "process" and w.process is not None and w.process.pid == 102]
    assert len(hidden) >= 4
    assert all(w.window_id.endswith("/p102") for w in hidden)
    assert {w.process.comm for w in hidden if w.process} == {"kworker-x"}
    cores = [w.features[spec.names.index("res.cpu_cores")] for w in hidden if w.complete]
    assert cores
    assert all(c == pytest.approx(2.0) for c in cores)
    assert any(w.count == 0 for w in hidden)  # slots where the hasher made no syscall: still judged
    streams = [w for w in windows if w.scope == "stream"]
    assert all(w.process is not None and w.process.comm == "kworker-x" for w in streams if w.complete)
    assert len({w.window_id for w in windows}) == len(windows)
    for cut in (3, 11, 17):
        run = EngineRun(spec, settings)
        for m in msgs[:cut]:
            run.feed(m)
        run.checkpoint()
        run.restart()
        for m in msgs[cut:]:
            run.feed(m)
        run.tick(FAR_FUTURE)
        run.checkpoint()
        assert per_pod(run.out) == per_pod(reference.out), f"restart after message {cut} changed the windows"
