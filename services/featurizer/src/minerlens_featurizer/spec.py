"""Which feature spec the featurizer serves, and the policy tag that goes into window ids."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from minerlens_core.features import FeatureSpec, WindowPolicy
from minerlens_core.models import VerifiedManifest
from minerlens_core.schemas.windows import ModelRef

from minerlens_featurizer.settings import FeaturizerSettings

log = logging.getLogger(__name__)


def policy_tag(policy: WindowPolicy) -> str:
    """Short stable name of a window policy: ``time:1s``, ``time:0.5s``, ``count:1000/1000``."""
    if policy.kind == "time":
        return f"time:{policy.seconds:g}s"
    return f"count:{policy.size}/{policy.stride}"


@dataclass(frozen=True)
class ServedSpec:
    """The spec, its window-id tag and the model it came from (None: the default spec)."""

    spec: FeatureSpec
    tag: str
    model: ModelRef | None = None


def served_spec(settings: FeaturizerSettings) -> ServedSpec:
    """The model artifact's verified spec (hashes checked), or 1-second time windows by default."""
    if settings.model_dir is not None:
        verified = VerifiedManifest(settings.model_dir)
        log.info(
            "feature spec from %s (%s %s): %s, digest %s",
            settings.model_dir,
            verified.ref.name,
            verified.ref.version,
            policy_tag(verified.spec.window),
            verified.spec.digest[:16],
        )
        return ServedSpec(verified.spec, policy_tag(verified.spec.window), verified.ref)
    spec = FeatureSpec.build(window=WindowPolicy.time(settings.window_seconds))
    log.info("no model_dir: default feature spec %s, digest %s", policy_tag(spec.window), spec.digest[:16])
    return ServedSpec(spec, policy_tag(spec.window))
