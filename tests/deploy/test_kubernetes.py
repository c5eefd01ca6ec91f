"""The Helm chart (deploy/helm/minerlens): every variant renders, every manifest validates, and the
security settings hold.

Rendering uses the real Helm (``helm template``, scripts/helm.sh); validation the Kubernetes OpenAPI
schemas (kubernetes-validate, strict: unknown fields are errors) for the oldest supported (1.30) and
the newest known Kubernetes. The Prometheus Operator kinds (monitoring.coreos.com), which those schemas
do not know, are checked by shape. The assertions read the rendered documents, so they check what is
applied.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess

import kubernetes_validate
import pytest
import yaml
from minerlens_core.models.signing import PUBKEY_ENV
from minerlens_responder.policy import parse_policy

from tests.deploy.tools import (
    CHART,
    K8S,
    ROOT,
    SERVICES,
    SETTINGS_PREFIXES,
    VARIANTS,
    Doc,
    containers,
    env_of,
    named,
    of_kind,
    pod_spec,
    render,
    rendered_sources,
    settings_fields,
    tool,
    workloads,
)

K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
COLLECTOR = "minerlens-collector"
OPERATOR_GROUP = "monitoring.coreos.com/"  # CRDs of the Prometheus Operator: not in the OpenAPI schemas


def _builtin(doc: Doc) -> bool:
    return not str(doc["apiVersion"]).startswith(OPERATOR_GROUP)


# MINERLENS_* variables that are not a service's settings class field: identity, the model signing key
OTHER_SETTINGS = {"MINERLENS_CLUSTER", "MINERLENS_NODE_NAME", "REDIS_PASSWORD", PUBKEY_ENV}


def _strict_validate(doc: Doc, version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


# ---- rendering and schema validation ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_validates(name: str, version: str) -> None:
    docs = render(name)
    assert len(docs) > 40
    for doc in filter(_builtin, docs):
        try:
            _strict_validate(doc, version)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']} invalid for {version}: {exc}")


def test_the_validator_rejects_what_the_api_would() -> None:
    dep = copy.deepcopy(named(render("base"), "Deployment", "minerlens-scorer"))
    pod_spec(dep)["containers"][0]["resource"] = {"limits": {"cpu": 1}}  # typo: resources
    with pytest.raises(kubernetes_validate.ValidationError):
        _strict_validate(dep, K8S_VERSIONS[-1])
    dep = copy.deepcopy(named(render("base"), "Deployment", "minerlens-scorer"))
    pod_spec(dep)["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        _strict_validate(dep, K8S_VERSIONS[-1])


def test_yamllint() -> None:
    """The YAML files as written (not the chart's Go templates: their output is parsed by every test here)."""
    yamllint = tool("yamllint", "pip install yamllint")
    chart = CHART.relative_to(ROOT)
    targets = [
        *(str(chart / f) for f in ("Chart.yaml", "values.yaml", "examples", "files")),
        "k8s",
        "docker-compose.yml",
        ".hadolint.yaml",
        ".yamllint.yaml",
    ]
    out = subprocess.run(
        [yamllint, "-s", "-c", ".yamllint.yaml", *targets], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_dependency_manifests_parse_and_name_the_cluster() -> None:
    """Strimzi CRs cannot be schema-checked offline: check their shape instead."""
    kafka = list(yaml.safe_load_all((K8S / "dependencies" / "strimzi" / "kafka.yaml").read_text()))
    cluster = next(d for d in kafka if d["kind"] == "Kafka")
    assert cluster["metadata"]["name"] == "minerlens"
    peers = cluster["spec"]["kafka"]["listeners"][0]["networkPolicyPeers"]
    assert {p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in peers} == {
        "minerlens",
        "minerlens-node",
    }
    assert all(p["podSelector"]["matchLabels"] == {"minerlens.io/kafka-client": "true"} for p in peers)
    assert yaml.safe_load((K8S / "dependencies" / "redis" / "values.yaml").read_text())["auth"]["enabled"] is True


# ---- topics and scaling ----------------------------------------------------------------------------


def _topic_partitions() -> dict[str, int]:
    topics = yaml.safe_load_all((K8S / "dependencies" / "strimzi" / "topics.yaml").read_text())
    return {t["metadata"]["name"]: t["spec"]["partitions"] for t in topics}


def test_every_topic_is_declared() -> None:
    from minerlens_core import topics
    from minerlens_responder.audit import AUDIT_TOPIC

    declared = _topic_partitions()
    for topic in (*topics.ALL, AUDIT_TOPIC):
        assert topic in declared, f"k8s/dependencies/strimzi/topics.yaml lacks {topic}"
    for topic in (topics.SYSCALLS, topics.WINDOWS, topics.ALERTS):
        assert topics.dead_letter(topic) in declared
    specs = {
        t["metadata"]["name"]: t["spec"]
        for t in yaml.safe_load_all((K8S / "dependencies" / "strimzi" / "topics.yaml").read_text())
    }
    for topic in topics.COMPACTED:
        assert specs[topic].get("config", {}).get("cleanup.policy") == "compact", f"{topic} must be compacted"


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_hpas_scale_featurizer_and_scorer_within_the_partitions(name: str) -> None:
    docs = render(name)
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h["spec"] for h in of_kind(docs, "HorizontalPodAutoscaler")}
    assert set(hpas) == {"minerlens-featurizer", "minerlens-scorer"}
    partitions = _topic_partitions()
    bound = {
        "minerlens-featurizer": partitions["minerlens.syscalls.v1"],
        "minerlens-scorer": partitions["minerlens.windows.v1"],
    }
    for target, spec in hpas.items():
        assert 1 <= spec["minReplicas"] <= spec["maxReplicas"] <= bound[target], (target, spec)
        # the HPA owns the replica count: a count in the Deployment would be reset by every upgrade
        assert "replicas" not in named(docs, "Deployment", target)["spec"], target


# ---- security ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_only_the_collector_is_privileged(name: str) -> None:
    for wl in workloads(render(name)):
        spec = pod_spec(wl)
        wname = wl["metadata"]["name"]
        if wname == COLLECTOR:
            continue
        assert wl["metadata"]["namespace"] == "minerlens", wname
        for key in ("hostPID", "hostNetwork", "hostIPC"):
            assert not spec.get(key), f"{wname}: {key}"
        assert not [v for v in spec.get("volumes") or [] if "hostPath" in v], f"{wname}: hostPath volume"
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True, wname
        assert psc["runAsUser"] >= 1000, wname
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, wname
        for c in containers(wl):
            sc = c["securityContext"]
            assert not sc.get("privileged"), f"{wname}/{c['name']}: privileged"
            assert sc["allowPrivilegeEscalation"] is False, f"{wname}/{c['name']}"
            assert sc["readOnlyRootFilesystem"] is True, f"{wname}/{c['name']}"
            assert sc["capabilities"] == {"drop": ["ALL"]}, f"{wname}/{c['name']}: {sc['capabilities']}"


def test_collector_daemonset_has_what_tracing_needs_and_no_more() -> None:
    ds = named(render("base"), "DaemonSet", COLLECTOR)
    assert ds["metadata"]["namespace"] == "minerlens-node"
    spec = pod_spec(ds)
    assert spec["hostPID"] is True
    assert not spec.get("hostNetwork")
    assert not spec.get("hostIPC")
    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = spec["containers"]
    sc = c["securityContext"]
    assert not sc.get("privileged")
    # the smallest set measured by tests/collector/test_capabilities_live.py for tracefs + fd kinds
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["SYS_PTRACE", "DAC_READ_SEARCH"]}
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    host = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    assert host == {"tracefs": "/sys/kernel/tracing", "host-proc": "/proc", "host-cgroup": "/sys/fs/cgroup"}
    assert mounts["host-proc"]["readOnly"] is True
    assert mounts["host-cgroup"]["readOnly"] is True
    assert not mounts["tracefs"].get("readOnly")  # it creates its own tracefs instance
    node = next(e for e in c["env"] if e["name"] == "MINERLENS_NODE_NAME")
    assert node["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    env = env_of(ds, render("base"))
    assert env["MINERLENS_COLLECTOR_PROC_ROOT"] == mounts["host-proc"]["mountPath"]
    assert env["MINERLENS_COLLECTOR_CGROUP_ROOT"] == mounts["host-cgroup"]["mountPath"]


def test_privileged_collector_only_touches_the_collector() -> None:
    """examples/privileged-collector.yaml (collector.privileged: true) against the default render."""
    docs = render("privileged-collector")
    (c,) = pod_spec(named(docs, "DaemonSet", COLLECTOR))["containers"]
    assert c["securityContext"]["privileged"] is True

    def key(d: Doc) -> tuple[str, str, str]:
        return d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]

    base = {key(d): d for d in render("base")}
    changed = [key(d) for d in docs if base.get(key(d)) != d]
    assert changed == [("DaemonSet", "minerlens-node", COLLECTOR)]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_resources_and_probes_everywhere(name: str) -> None:
    for wl in workloads(render(name)):
        for c in containers(wl):
            who = f"{name}: {wl['metadata']['name']}/{c['name']}"
            res = c["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]), who
            assert {"cpu", "memory"} <= set(res["limits"]), who
            assert "livenessProbe" in c, who
            assert "readinessProbe" in c, who
            ports = {p["name"] for p in c.get("ports") or []}
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if probe in c:
                    assert c[probe]["httpGet"]["port"] in ports, f"{who}: {probe} port"


def _rules(role: Doc) -> set[tuple[str, str, str]]:
    return {
        (g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
    }


def test_rbac_is_least_privilege() -> None:
    docs = render("base")
    roles = {r["metadata"]["name"]: r for r in of_kind(docs, "ClusterRole") + of_kind(docs, "Role")}
    assert set(roles) == {"minerlens-collector", "minerlens-responder"}
    assert _rules(roles["minerlens-collector"]) == {("", "pods", v) for v in ("get", "list", "watch")}
    assert _rules(roles["minerlens-responder"]) == {
        ("", "pods", "get"),
        ("", "pods", "patch"),
        ("", "pods/eviction", "create"),
        ("events.k8s.io", "events", "create"),
        ("apps", "replicasets", "get"),
        ("apps", "deployments/scale", "get"),
        ("apps", "deployments/scale", "patch"),
        ("apps", "statefulsets/scale", "get"),
        ("apps", "statefulsets/scale", "patch"),
        ("apps", "replicasets/scale", "get"),
        ("apps", "replicasets/scale", "patch"),
        ("networking.k8s.io", "networkpolicies", "create"),
    }
    for role in roles.values():
        for g, r, v in _rules(role):
            assert "*" not in (g, r, v)
            assert r != "secrets"
    bindings = {b["metadata"]["name"]: b for b in of_kind(docs, "ClusterRoleBinding")}
    assert bindings["minerlens-collector"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "minerlens-collector", "namespace": "minerlens-node"}
    ]
    assert bindings["minerlens-responder"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "minerlens-responder", "namespace": "minerlens"}
    ]


def test_only_api_callers_get_a_token() -> None:
    docs = render("base")
    for wl in workloads(docs):
        spec = pod_spec(wl)
        wname = wl["metadata"]["name"]
        if wname in (COLLECTOR, "minerlens-responder"):
            assert spec["serviceAccountName"] == wname
        else:
            assert spec["serviceAccountName"] == "minerlens"
            assert spec["automountServiceAccountToken"] is False, wname


_SCALE = ("deployments", "statefulsets", "replicasets")
RESPONDER_REQUESTS = {
    ("GET", "/api/v1/namespaces/{namespace}/pods/{name}"): {("", "pods", "get")},
    ("PATCH", "/api/v1/namespaces/{namespace}/pods/{name}"): {("", "pods", "patch")},
    ("POST", "/api/v1/namespaces/{namespace}/pods/{name}/eviction"): {("", "pods/eviction", "create")},
    ("POST", "/apis/events.k8s.io/v1/namespaces/{namespace}/events"): {("events.k8s.io", "events", "create")},
    ("GET", "/apis/apps/v1/namespaces/{namespace}/replicasets/{name}"): {("apps", "replicasets", "get")},
    ("GET", "/apis/apps/v1/namespaces/{namespace}/{kind}/{name}/scale"): {
        ("apps", f"{k}/scale", "get") for k in _SCALE
    },
    ("PATCH", "/apis/apps/v1/namespaces/{namespace}/{kind}/{name}/scale"): {
        ("apps", f"{k}/scale", "patch") for k in _SCALE
    },
    ("POST", "/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies"): {
        ("networking.k8s.io", "networkpolicies", "create")
    },
}


def test_responder_rbac_is_exactly_what_its_requests_need() -> None:
    """Read the requests the responder's KubeApi can send; the ClusterRole allows those and nothing else."""
    src = (ROOT / "services/responder/src/minerlens_responder/kube_api.py").read_text()
    sent = set()
    for block in src.split("    async def ")[1:]:
        path = re.search(r'path = f"([^"]+)"', block)
        for method in re.findall(r'_call\(\s*"(GET|PATCH|POST|PUT|DELETE)", path', block):
            assert path is not None
            sent.add((method, path.group(1)))
    assert sent == set(RESPONDER_REQUESTS), "kube_api.py changed: update RESPONDER_REQUESTS and the ClusterRole"
    needed = set().union(*RESPONDER_REQUESTS.values())
    assert _rules(named(render("base"), "ClusterRole", "minerlens-responder")) == needed


# ---- network policies -----------------------------------------------------------------------------


def _labels(wl: Doc) -> dict[str, str]:
    labels: dict[str, str] = wl["spec"]["template"]["metadata"]["labels"]
    return labels


def test_network_policies_default_deny_and_who_talks_to_what() -> None:
    docs = render("base")
    policies = {(p["metadata"]["namespace"], p["metadata"]["name"]): p["spec"] for p in of_kind(docs, "NetworkPolicy")}
    for ns in ("minerlens", "minerlens-node"):
        deny = policies[(ns, "default-deny")]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    # Kafka: every workload is a Kafka client and carries the label the policies (and Strimzi) admit
    for wl in workloads(docs):
        assert _labels(wl).get("minerlens.io/kafka-client") == "true", wl["metadata"]["name"]
    kafka = policies[("minerlens", "kafka-clients")]
    assert kafka["podSelector"] == {"matchLabels": {"minerlens.io/kafka-client": "true"}}
    assert kafka["egress"][0]["ports"] == [{"protocol": "TCP", "port": 9092}]
    # Redis: only the explainer, both directions
    redis_in = policies[("minerlens", "redis-from-explainer")]
    assert redis_in["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "minerlens-explainer"}}}
    ]
    assert policies[("minerlens", "explainer-to-redis")]["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "minerlens-explainer"}
    }
    explainer = named(docs, "Deployment", "minerlens-explainer")
    assert _labels(explainer)["minerlens-redis-client"] == "true"
    assert not [w for w in workloads(docs) if w is not explainer and "minerlens-redis-client" in _labels(w)]
    # the explainer API: only labelled clients, only port 8080
    api = policies[("minerlens", "explainer-api")]
    assert api["ingress"] == [
        {
            "from": [
                {"namespaceSelector": {}, "podSelector": {"matchLabels": {"minerlens.io/explainer-client": "true"}}}
            ],
            "ports": [{"protocol": "TCP", "port": 8080}],
        }
    ]
    # the API server: only the responder (and the collector in its own namespace)
    callers = [w["metadata"]["name"] for w in workloads(docs) if _labels(w).get("minerlens.io/kube-api-client")]
    assert callers == ["minerlens-responder"]


# ---- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_setting_in_the_manifests_exists(name: str) -> None:
    """A misspelt MINERLENS_* variable would be silently ignored by pydantic-settings: refuse it here."""
    docs = render(name)
    for wl in workloads(docs):
        for key in env_of(wl, docs):
            for prefix, (module, cls) in SETTINGS_PREFIXES.items():
                if key.startswith(prefix):
                    field = key.removeprefix(prefix)
                    assert field in settings_fields(module, cls), f"{wl['metadata']['name']}: {key} is unknown"
                    break
            else:
                assert key in OTHER_SETTINGS or not key.startswith("MINERLENS_"), key


def test_shipped_responder_policy_is_valid_and_dry_run() -> None:
    cm = named(render("base"), "ConfigMap", "minerlens-responder-policy")
    assert cm["data"]["policy.yaml"].strip() == (CHART / "files" / "responder-policy.yaml").read_text().strip()
    policy = parse_policy(cm["data"]["policy.yaml"])
    assert policy.mode == "dry-run"
    assert "minerlens*" in policy.namespaces.deny


def test_explainer_refuses_the_placeholder_token_secret() -> None:
    from minerlens_core.errors import ConfigurationError
    from minerlens_explainer.auth import parse_tokens

    secret = named(render("base"), "Secret", "minerlens-explainer-tokens")
    with pytest.raises(ConfigurationError, match="placeholder"):
        parse_tokens(secret["stringData"]["tokens"])


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_images_are_pinned(name: str) -> None:
    for wl in workloads(render(name)):
        for c in containers(wl):
            image = c["image"]
            assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?", image), image


def test_namespaces_enforce_pod_security() -> None:
    ns = {n["metadata"]["name"]: n["metadata"]["labels"] for n in of_kind(render("base"), "Namespace")}
    assert ns["minerlens"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert ns["minerlens-node"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_every_deployment_has_a_matching_pdb() -> None:
    docs = render("base")
    pdbs = of_kind(docs, "PodDisruptionBudget")
    for dep in of_kind(docs, "Deployment"):
        labels = _labels(dep)
        hits = [p for p in pdbs if all(labels.get(k) == v for k, v in p["spec"]["selector"]["matchLabels"].items())]
        assert len(hits) == 1, dep["metadata"]["name"]


def test_production_example_gives_the_featurizer_its_own_disk() -> None:
    dep = named(render("production"), "Deployment", "minerlens-featurizer")
    state = next(v for v in pod_spec(dep)["volumes"] if v["name"] == "state")
    assert "emptyDir" not in state
    claim = state["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert claim["accessModes"] == ["ReadWriteOnce"]
    hpa = named(render("production"), "HorizontalPodAutoscaler", "minerlens-featurizer")["spec"]
    base = named(render("base"), "HorizontalPodAutoscaler", "minerlens-featurizer")["spec"]
    assert hpa["minReplicas"] > base["minReplicas"]


def test_every_template_renders_something_in_some_variant() -> None:
    """A template file no variant renders is dead (or broken by a condition): none may be left over."""
    templates = {
        str(p.relative_to(CHART))
        for p in (CHART / "templates").rglob("*")
        if p.is_file() and not p.name.startswith("_") and p.name != "NOTES.txt"
    }
    rendered = set().union(*(rendered_sources(name) for name in VARIANTS))
    assert templates - rendered == set(), "never rendered"
    assert rendered - templates == set(), "rendered from a file that is not a template here"


def test_the_chart_replaces_kustomize() -> None:
    """One source of truth: the chart. Only the dependency examples stay in k8s/."""
    assert sorted(p.name for p in K8S.iterdir()) == ["dependencies"]
    assert not list(ROOT.glob("**/kustomization.y*ml"))


# ---- the Prometheus Operator kinds (not in the OpenAPI schemas: their shape is checked here) --------


def test_monitoring_is_off_by_default() -> None:
    for name in ("base", "production", "privileged-collector"):
        docs = render(name)
        assert [d for d in docs if not _builtin(d)] == [], name
        assert not [d for d in of_kind(docs, "ConfigMap") if "grafana_dashboard" in d["metadata"].get("labels", {})]


def _service_port(svc: Doc, port_name: str) -> dict[str, object]:
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert port_name in ports, f"{svc['metadata']['name']} has no port {port_name}"
    port: dict[str, object] = ports[port_name]
    return port


def test_service_monitors_scrape_every_service_metrics_port() -> None:
    docs = render("monitoring")
    monitors = of_kind(docs, "ServiceMonitor")
    assert {m["metadata"]["name"] for m in monitors} == {f"minerlens-{s}" for s in SERVICES}
    for m in monitors:
        assert m["apiVersion"] == "monitoring.coreos.com/v1"
        assert set(m) == {"apiVersion", "kind", "metadata", "spec"}
        assert m["metadata"]["labels"]["release"] == "kube-prometheus-stack"  # examples/monitoring.yaml
        spec = m["spec"]
        assert set(spec) == {"namespaceSelector", "selector", "endpoints"}
        ns = m["metadata"]["namespace"]
        assert spec["namespaceSelector"] == {"matchNames": [ns]}
        # the selector picks exactly the service's Service, in the monitor's namespace
        services = [
            s
            for s in of_kind(docs, "Service")
            if s["metadata"]["namespace"] == ns
            and all(s["metadata"]["labels"].get(k) == v for k, v in spec["selector"]["matchLabels"].items())
        ]
        assert [s["metadata"]["name"] for s in services] == [m["metadata"]["name"]]
        (svc,) = services
        (endpoint,) = spec["endpoints"]
        assert set(endpoint) <= {"port", "path", "scheme", "interval", "scrapeTimeout", "authorization", "relabelings"}
        assert endpoint["path"] == "/metrics"
        assert re.fullmatch(r"\d+s", endpoint["interval"])
        assert re.fullmatch(r"\d+s", endpoint["scrapeTimeout"])
        # ... on the port whose target serves /metrics: the one the pods announce in prometheus.io/port
        target = _service_port(svc, endpoint["port"])["targetPort"]
        (wl,) = [w for w in workloads(docs) if w["metadata"]["name"] == svc["metadata"]["name"]]
        (c,) = pod_spec(wl)["containers"]
        container_port = next(p["containerPort"] for p in c["ports"] if p["name"] == target)
        assert str(container_port) == wl["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]
        if m["metadata"]["name"] == "minerlens-explainer":  # /metrics needs a read token there
            assert endpoint["authorization"] == {
                "type": "Bearer",
                "credentials": {"name": "minerlens-explainer-scrape", "key": "token"},
            }
        else:
            assert "authorization" not in endpoint


def test_prometheus_rule_is_the_rules_file() -> None:
    (rule,) = of_kind(render("monitoring"), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == "minerlens"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert set(rule["spec"]) == {"groups"}
    assert rule["spec"]["groups"] == yaml.safe_load((CHART / "files" / "minerlens.rules.yaml").read_text())["groups"]
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"}
        for r in group["rules"]:
            assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r


def test_grafana_dashboard_is_provisioned_for_the_sidecar() -> None:
    cms = [
        d for d in of_kind(render("monitoring"), "ConfigMap") if d["metadata"]["name"] == "minerlens-grafana-dashboard"
    ]
    (cm,) = cms
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "monitoring"  # examples/monitoring.yaml
    assert cm["metadata"]["annotations"] == {"grafana_folder": "minerlens"}
    (key,) = cm["data"]
    assert key.endswith(".json")
    assert json.loads(cm["data"][key]) == json.loads((CHART / "dashboards" / "minerlens.json").read_text())
