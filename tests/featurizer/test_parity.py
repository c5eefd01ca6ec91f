"""Parity: committed sample traces replayed the way a collector sends them (``source="replay"``), through
the real Faust agents (``test_context``, memory store), give exactly the windows training computes
offline (``windows_from_trace`` + ``vectorize_many`` + ``window_sequence``): same ids, features bit for bit
(NaN-aware), same sequences, counts, spans and completeness."""

from __future__ import annotations

import time

import pytest
from minerlens_core.features import FeatureSpec, WindowPolicy
from minerlens_core.schemas.windows import decode_window
from minerlens_featurizer.app import FeaturizerApp
from minerlens_featurizer.control import Tick
from minerlens_featurizer.settings import FeaturizerSettings

from tests.featurizer.streams import Item, assert_same, offline, replay, served, through_agents

TRACES = [
    "miner-randomx-1t-yield-r1",
    "miner-cryptonight-2t-r1",
    "miner-sha256d-noise-90-r1",
    "gzip-compress-r1",
    "idle-redis-r1",
    "nginx-wrk-r1",
    "numpy-mlp-r1",
]


async def _parity(settings: FeaturizerSettings, spec: FeatureSpec, *, ticks: bool) -> None:
    pods, batches = replay(TRACES, max_events=1024, max_age_s=0.5)
    fa = FeaturizerApp(settings, partitions=4, served=served(spec), in_memory_outputs=True)
    part = {p.uid: i % 4 for i, p in enumerate(pods)}
    items: list[Item] = []
    for i, b in enumerate(batches):
        assert b.envelope.pod is not None
        items.append((b.model_dump_json().encode(), b.envelope.key, part[b.envelope.pod.uid]))
        if ticks and i % 10 == 9:
            # watermark ticks while the batches flow (wall = now: nothing is idle): they close time
            # slots of streams that went quiet, which must not change any window
            items += [(Tick(wall=time.time()), p) for p in range(4)]
    closed_by_ticks: list[int] = []
    advance = fa.engine._advance

    def counting_advance(p: int, node: str, watermark_ns: int) -> None:
        before = len(fa.engine._outbox.windows)
        advance(p, node, watermark_ns)
        closed_by_ticks.append(len(fa.engine._outbox.windows) - before)

    fa.engine._advance = counting_advance  # type: ignore[method-assign]
    windows, dead, _ = await through_agents(fa, items)
    assert dead == []
    got = {}
    for event in windows:
        fw = decode_window(event.value)
        assert fw.window_id not in got, f"{fw.window_id} emitted twice"
        assert event.key == fw.envelope.key
        got[fw.window_id] = fw
    closed_at_end = assert_same(got, offline(pods, spec))
    assert fa.flushes < len(batches) / 2, "windows are vectorised in micro-batches, not one message at a time"
    if ticks:
        # pods whose trace ended early had their last slot closed by the node's watermark, not by idling
        assert sum(closed_by_ticks) >= 1
        assert closed_at_end >= 1


async def test_agent_equals_offline_for_the_model_spec(
    settings: FeaturizerSettings, artifact_spec: FeatureSpec
) -> None:
    await _parity(settings, artifact_spec, ticks=True)


@pytest.mark.parametrize(
    "policy", [WindowPolicy.count(200), WindowPolicy.count(64, stride=16)], ids=["count-200", "sliding-64/16"]
)
async def test_agent_equals_offline_for_count_windows(settings: FeaturizerSettings, policy: WindowPolicy) -> None:
    await _parity(settings, FeatureSpec.build(window=policy), ticks=False)
