"""The featurizer carries a stream's container image (``Envelope.container_image``) into its windows: from the
batches and resource samples, through a restart (the persisted stream state), and leaves it out when unknown."""

from __future__ import annotations

from minerlens_core.features import WindowPolicy
from minerlens_core.schemas import ContainerImage, ResourceSample, ResourceSnapshot, SyscallBatch
from minerlens_featurizer.settings import FeaturizerSettings
from minerlens_featurizer.state import HEADER_PREFIX, load_header

from tests.featurizer.streams import FAR_FUTURE, T0, EngineRun, replay
from tests.featurizer.test_engine import TRACES, spec_of

IMAGE = ContainerImage(name="docker.io/library/redis", tag="7.2", digest="sha256:" + "12" * 32)


def _imaged(batches: list[SyscallBatch], image: ContainerImage | None) -> list[SyscallBatch]:
    return [
        b.model_copy(update={"envelope": b.envelope.model_copy(update={"container_image": image})}) for b in batches
    ]


def test_windows_carry_the_image_of_their_stream_across_a_restart(settings: FeaturizerSettings) -> None:
    pods, batches = replay(TRACES[:2], max_events=700, max_age_s=0.3)
    imaged_uid = pods[0].uid
    batches = [_imaged([b], IMAGE)[0] if b.envelope.key == imaged_uid.encode() else b for b in batches]
    run = EngineRun(spec_of(WindowPolicy.time(1.0)), settings)
    cut = len(batches) // 2
    run.feed_batches(batches[:cut], checkpoint_every=3)
    run.checkpoint()
    headers = [load_header(v) for k, v in run.store.items() if k.startswith(HEADER_PREFIX)]
    assert {h.pod.uid: h.container_image for h in headers} == {imaged_uid: IMAGE, pods[1].uid: None}
    run.restart()  # the image comes back from the persisted state, not only from the next batch
    run.feed_batches(batches[cut:], checkpoint_every=3)
    run.tick(FAR_FUTURE)
    run.checkpoint()
    windows = run.windows()
    mine = [w for w in windows if w.envelope.pod and w.envelope.pod.uid == imaged_uid]
    others = [w for w in windows if w not in mine]
    assert len(mine) > 3
    assert others
    assert all(w.envelope.container_image == IMAGE for w in mine)
    assert all(w.envelope.container_image is None for w in others)
    raw = [v for v in run.out if b'"container_image"' in v]
    assert len(raw) == len(mine), "windows of a stream without an image do not mention the field"


def test_a_later_message_that_knows_the_image_fills_it_in(settings: FeaturizerSettings) -> None:
    """A stream that began before the collector knew the image (the API was slow): later windows carry it,
    and a message without one (e.g. a collector without API access) does not erase it."""
    _, batches = replay(TRACES[2:], max_events=300, max_age_s=0.3)
    n = len(batches)
    assert n >= 6
    first, second, third = batches[: n // 3], batches[n // 3 : 2 * n // 3], batches[2 * n // 3 :]
    run = EngineRun(spec_of(WindowPolicy.time(1.0)), settings)
    run.feed_batches(first)
    early = len(run.out)
    env = second[0].envelope.model_copy(update={"container_image": IMAGE})
    sample = ResourceSample(envelope=env, sample=ResourceSnapshot(ts_ns=(second[0].start_ns or T0) - 1, cpu_ns=1))
    run.feed_batches([sample, *second, *third])
    run.tick(FAR_FUTURE)
    run.checkpoint()
    windows = run.windows()
    assert all(w.envelope.container_image is None for w in windows[:early])
    late = windows[-3:]
    assert all(w.envelope.container_image == IMAGE for w in late)
