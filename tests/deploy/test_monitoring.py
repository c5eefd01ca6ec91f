"""k8s/monitoring/minerlens.rules.yaml: every alerting rule names metrics and labels the services export."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "k8s" / "monitoring" / "minerlens.rules.yaml"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",), "info": ("_info",)}
SCRAPE_LABELS = {"instance", "job", "le"}  # added by Prometheus or by the histogram itself


def _exported() -> dict[str, set[str]]:
    """Series name -> label names, from the metrics classes of the services the rules watch."""
    from minerlens_collector.metrics import CollectorMetrics
    from minerlens_featurizer.metrics import FeaturizerMetrics
    from minerlens_responder.metrics import ResponderMetrics
    from minerlens_scorer.metrics import ScorerMetrics
    from minerlens_siem.metrics import SiemMetrics

    out: dict[str, set[str]] = {}
    for holder in (CollectorMetrics(), FeaturizerMetrics(), ScorerMetrics(), SiemMetrics(), ResponderMetrics()):
        for metric in vars(holder).values():
            if isinstance(metric, MetricWrapperBase):
                for suffix in SUFFIXES[metric._type]:
                    out[metric._name + suffix] = set(metric._labelnames)
    return out


def _rules() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_rules_are_complete_alerts() -> None:
    rules = _rules()
    assert len(rules) >= 10
    names = [r["alert"] for r in rules]
    assert len(set(names)) == len(names), "alert names are unique"
    for r in rules:
        assert isinstance(r["expr"], str), r["alert"]
        assert r["expr"].strip(), r["alert"]
        assert r["labels"]["severity"] in {"warning", "critical"}, r["alert"]  # type: ignore[index]
        assert r["annotations"]["summary"], r["alert"]  # type: ignore[index]


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: str(r["alert"]))
def test_rule_names_exported_metrics_and_labels(rule: dict[str, object]) -> None:
    exported = _exported()
    expr = str(rule["expr"])
    metrics = set(re.findall(r"\bminerlens_[a-z0-9_]+", expr))
    assert metrics, f"{rule['alert']} watches no minerlens metric"
    unknown = metrics - set(exported)
    assert not unknown, f"{rule['alert']}: not exported by any service: {sorted(unknown)}"
    grouped = {g.strip() for by in re.findall(r"\bby \(([^)]*)\)", expr) for g in by.split(",")}
    used = grouped | set(re.findall(r"\$labels\.(\w+)", yaml.safe_dump(rule.get("annotations", {}))))
    available = set.union(*(exported[m] for m in metrics)) | SCRAPE_LABELS
    assert used <= available, f"{rule['alert']}: labels {sorted(used - available)} are not on {sorted(metrics)}"
