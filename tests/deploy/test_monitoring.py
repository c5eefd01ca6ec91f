"""The chart's monitoring: every alerting rule (deploy/helm/minerlens/files/minerlens.rules.yaml) and every
query of the Grafana dashboard (deploy/helm/minerlens/dashboards/minerlens.json) names metrics and labels
the services export. Prometheus exports a counter ``x`` as ``x_total``, a histogram as ``x_bucket``,
``x_sum`` and ``x_count``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "minerlens"
RULES = CHART / "files" / "minerlens.rules.yaml"
DASHBOARD = CHART / "dashboards" / "minerlens.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",), "info": ("_info",)}
SCRAPE_LABELS = {"instance", "job", "le"}  # added by Prometheus or by the histogram itself


def _exported() -> dict[str, set[str]]:
    """Series name -> label names, from the metrics classes of the services the rules watch."""
    from minerlens_collector.agent.metrics import CollectorMetrics
    from minerlens_explainer.metrics import Metrics as ExplainerMetrics
    from minerlens_featurizer.metrics import FeaturizerMetrics
    from minerlens_responder.metrics import ResponderMetrics
    from minerlens_scorer.metrics import ScorerMetrics
    from minerlens_siem.metrics import SiemMetrics

    out: dict[str, set[str]] = {}
    holders = (CollectorMetrics(), FeaturizerMetrics(), ScorerMetrics(), ExplainerMetrics(), SiemMetrics())
    for holder in (*holders, ResponderMetrics()):
        for metric in vars(holder).values():
            if isinstance(metric, MetricWrapperBase):
                for suffix in SUFFIXES[str(metric._type)]:
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


def test_the_rules_file_has_one_copy() -> None:
    """The chart loads it with .Files.Get; no second copy may drift (k8s/monitoring is gone)."""
    copies = [
        p.relative_to(ROOT)
        for p in ROOT.rglob("minerlens.rules.y*ml")
        if not {".git", ".venv", ".local", "node_modules"} & set(p.relative_to(ROOT).parts)
    ]
    assert copies == [RULES.relative_to(ROOT)]


# ---- the Grafana dashboard ---------------------------------------------------------------------------


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def _panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for p in _dashboard()["panels"]:
        panels.extend([p, *p.get("panels", [])])  # rows may hold panels when collapsed
    return [p for p in panels if p["type"] != "row"]


def _targets() -> list[tuple[str, dict[str, Any]]]:
    return [(str(p["title"]), t) for p in _panels() for t in p["targets"]]


def _labels_used(expr: str, legend: str) -> set[str]:
    grouped = {g.strip() for by in re.findall(r"\b(?:by|without) \(([^)]*)\)", expr) for g in by.split(",")}
    matched = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"", expr))
    return (grouped | matched | set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))) - {""}


def test_dashboard_is_a_grafana_dashboard() -> None:
    d = _dashboard()
    assert isinstance(d["uid"], str)
    assert re.fullmatch(r"[\w-]{1,40}", d["uid"])
    assert isinstance(d["schemaVersion"], int)
    assert d["schemaVersion"] >= 30
    assert d["title"]
    assert "id" not in d or d["id"] is None  # provisioned dashboards are matched by uid
    (ds,) = [v for v in d["templating"]["list"] if v["type"] == "datasource"]
    assert ds["query"] == "prometheus"
    panels = _panels()
    assert len(panels) >= 10
    ids = [p["id"] for p in d["panels"]]
    assert len(set(ids)) == len(ids)
    for p in panels:
        assert p["targets"], f"{p['title']}: no query"
        assert set(p["gridPos"]) == {"h", "w", "x", "y"}
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for t in p["targets"]:
            assert t["expr"].strip()
            assert t["refId"]
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"])


def test_dashboard_shows_capture_lag_verdicts_and_the_explainer() -> None:
    exprs = " ".join(t["expr"] for _, t in _targets())
    for metric in (
        "minerlens_collector_events_captured_total",  # capture rate
        "minerlens_collector_events_lost_total",  # loss
        "minerlens_scorer_window_lag_seconds_bucket",  # pipeline lag
        "minerlens_featurizer_flush_seconds_bucket",
        "minerlens_scorer_verdicts_total",  # verdicts (per decision: no namespace label is exported)
        "minerlens_scorer_alert_events_total",  # alerts (per activity)
        "minerlens_explainer_http_request_seconds_bucket",  # explainer latency
        "minerlens_explainer_cache_lookups_total",  # cache hit rate
    ):
        assert metric in exprs, metric


@pytest.mark.parametrize(("panel", "target"), _targets(), ids=lambda v: v if isinstance(v, str) else v["refId"])
def test_dashboard_queries_name_exported_metrics_and_labels(panel: str, target: dict[str, Any]) -> None:
    exported = _exported()
    expr = str(target["expr"])
    metrics = set(re.findall(r"\bminerlens_[a-z0-9_]+", expr))
    assert metrics, f"{panel}: queries no minerlens metric"
    unknown = metrics - set(exported)
    assert not unknown, f"{panel}: not exported by any service: {sorted(unknown)}"
    if "histogram_quantile" in expr:
        assert all(m.endswith("_bucket") for m in metrics), f"{panel}: a quantile of something else than buckets"
    used = _labels_used(expr, str(target.get("legendFormat", "")))
    available = set.union(*(exported[m] for m in metrics)) | SCRAPE_LABELS
    assert used <= available, f"{panel}: labels {sorted(used - available)} are not on {sorted(metrics)}"
