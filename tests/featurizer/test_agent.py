"""The Faust agents with ``test_context`` and the memory store: poison messages, state in the table,
restart from the table, fan-out of node-wide drop reports, micro-batching."""

from __future__ import annotations

import json

from minerlens_core.features import FeatureSpec
from minerlens_core.schemas import DropReport, Envelope
from minerlens_core.schemas.windows import decode_window
from minerlens_featurizer.app import FeaturizerApp
from minerlens_featurizer.control import NodeLoss, decode_control
from minerlens_featurizer.settings import FeaturizerSettings
from minerlens_featurizer.state import HEADER_PREFIX, SEGMENT_PREFIX

from tests.featurizer.streams import Item, per_pod, replay, served, through_agents

TRACES = ["miner-cryptonight-1t-yield-r1", "gzip-compress-r1"]


def _items(batches, partition: int = 0) -> list[Item]:
    return [(b.model_dump_json().encode(), b.envelope.key, partition) for b in batches]


async def test_poison_between_good_messages_is_dead_lettered_and_the_agent_goes_on(
    settings: FeaturizerSettings, artifact_spec: FeatureSpec
) -> None:
    _, batches = replay(TRACES)
    items = _items(batches)
    wrong_version = json.loads(batches[3].model_dump_json())
    wrong_version["envelope"]["schema_version"] = 2
    poison: list[Item] = [
        (b"\x00\xff not json", b"k", 0),
        (json.dumps(wrong_version).encode(), b"k", 0),
        (None, b"k", 0),
    ]
    mixed = items[:5] + poison[:2] + items[5:10] + poison[2:] + items[10:]

    clean_app = FeaturizerApp(settings, partitions=4, served=served(artifact_spec), in_memory_outputs=True)
    clean, _, _ = await through_agents(clean_app, items)
    fa = FeaturizerApp(
        settings.model_copy(update={"app_id": settings.app_id + "-b"}),
        partitions=4,
        served=served(artifact_spec),
        in_memory_outputs=True,
    )
    windows, dead, _ = await through_agents(fa, mixed)

    assert per_pod([w.value for w in windows]) == per_pod([w.value for w in clean]), "poison changed nothing else"
    assert len(windows) > 10
    reasons = [d.headers["error.reason"] for d in dead]
    assert reasons == [b"undecodable", b"schema_version", b"undecodable"]
    assert [d.headers["source.offset"] for d in dead] == [b"5", b"6", b"12"]
    assert dead[0].value == poison[0][0]
    assert dead[0].headers["error.class"] == b"ValidationError"
    assert fa.metrics.dead_letters.labels("undecodable")._value.get() == 2


async def test_state_is_in_the_table_and_a_new_worker_continues_from_it(
    settings: FeaturizerSettings, artifact_spec: FeatureSpec
) -> None:
    _, batches = replay(TRACES)
    whole = FeaturizerApp(settings, partitions=4, served=served(artifact_spec), in_memory_outputs=True)
    reference, _, _ = await through_agents(whole, _items(batches, 2))

    cut = len(batches) // 2
    first = FeaturizerApp(
        settings.model_copy(update={"app_id": settings.app_id + "-1"}),
        partitions=4,
        served=served(artifact_spec),
        in_memory_outputs=True,
    )
    before, _, _ = await through_agents(first, _items(batches[:cut], 2), final_tick=False)
    stored = dict(first.table.data.items())
    assert any(k.startswith(HEADER_PREFIX) for k in stored)
    assert any(k.startswith(SEGMENT_PREFIX) for k in stored), "the open windows' events are in the table"
    assert first.app.producer.buffer.size > 0, "and on their way to the changelog topic"

    second = FeaturizerApp(
        settings.model_copy(update={"app_id": settings.app_id + "-1"}),
        partitions=4,
        served=served(artifact_spec),
        in_memory_outputs=True,
    )
    second.table.data.update(stored)  # what changelog recovery does on start-up
    after, _, _ = await through_agents(second, _items(batches[cut:], 2), first_offset=cut)
    assert per_pod([w.value for w in before + after]) == per_pod([w.value for w in reference])
    assert second.metrics.restored._value.get() == 2


async def test_node_wide_drop_report_reaches_every_partition_and_the_windows(
    settings: FeaturizerSettings, artifact_spec: FeatureSpec
) -> None:
    _, batches = replay(TRACES)
    report = DropReport(
        envelope=Envelope(node="node-a"), source="tracefs", reason="ring_buffer_overrun", lost_events=77, cpu=1
    )
    fa = FeaturizerApp(settings, partitions=4, served=served(artifact_spec), in_memory_outputs=True)
    items = [*_items(batches[:10], 3), (report.model_dump_json().encode(), b"node:node-a", 1)]
    windows, _, control = await through_agents(fa, items, final_tick=False)
    assert sorted(e.message.partition for e in control) == [0, 2, 3], "partition 1 applied it in input order"
    loss = decode_control(control[0].value)
    assert isinstance(loss, NodeLoss)
    assert (loss.node, loss.lost_events, loss.reason) == ("node-a", 77, "ring_buffer_overrun")

    # each other partition's owner gets a copy through the control topic; this worker owns them all here
    copies: list[Item] = [(decode_control(e.value), e.message.partition) for e in control]
    more, _, _ = await through_agents(fa, [*copies, *_items(batches[10:], 3)])
    decoded = [decode_window(w.value) for w in windows + more]
    lost = [w.lost_events for w in decoded if w.scope == "stream"]  # a process window repeats its stream's
    assert sum(lost) == 77 * 2, "each of node-a's two streams (both in partition 3) carries the loss once"
