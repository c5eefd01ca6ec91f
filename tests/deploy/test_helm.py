"""The Helm chart itself: lint, the values schema, and what its values switch (tokens, images, models,
configuration). test_kubernetes.py checks the rendered variants; these render the chart with other values."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.deploy.tools import (
    CHART,
    ROOT,
    Doc,
    containers,
    env_of,
    helm,
    named,
    of_kind,
    parse,
    pod_spec,
    template,
    workloads,
)

EXAMPLES = sorted(p.name for p in (CHART / "examples").glob("*.yaml"))
DIGEST = "sha256:" + "ab" * 32
MODEL_USERS = ("minerlens-featurizer", "minerlens-scorer", "minerlens-explainer")


def _render(*args: str) -> tuple[Doc, ...]:
    out = template(*args)
    assert out.returncode == 0, out.stderr
    return parse(out.stdout)


def _refused(*args: str) -> str:
    out = template(*args)
    assert out.returncode != 0, f"helm template {' '.join(args)} should fail"
    assert not out.stdout.strip()
    return out.stderr


def _chart() -> Doc:
    chart: Doc = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return chart


def _image(docs: tuple[Doc, ...], workload: str) -> str:
    (wl,) = [w for w in workloads(docs) if w["metadata"]["name"] == workload]
    (c,) = pod_spec(wl)["containers"]
    image: str = c["image"]
    return image


# ---- the chart ---------------------------------------------------------------------------------------


def test_chart_metadata_and_no_dependencies() -> None:
    chart = _chart()
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "minerlens"
    assert chart["version"] == "0.3.0"
    assert chart["appVersion"] == "0.3.0"
    # nothing to fetch: no dependencies (no `helm dependency build`), no vendored sub-charts
    assert not chart.get("dependencies")
    assert not (CHART / "charts").exists()
    assert not (CHART / "Chart.lock").exists()


@pytest.mark.parametrize("example", ["", *EXAMPLES])
def test_helm_lint_is_clean(example: str) -> None:
    args = ["-f", str(CHART / "examples" / example)] if example else []
    out = helm("lint", "--strict", str(CHART), *args)
    assert out.returncode == 0, out.stdout + out.stderr
    findings = [line for line in out.stdout.splitlines() if line.startswith("[")]
    assert findings == ["[INFO] Chart.yaml: icon is recommended"], findings


def test_rendering_needs_no_network() -> None:
    """No chart dependency and no schema to download: it renders with every proxy pointing nowhere."""
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens
    env = {**os.environ, "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "http_proxy": dead, "https_proxy": dead}
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    out = helm("template", "minerlens", str(CHART), "--set", "featurizer.replicas=3", env=env)
    assert out.returncode == 0, out.stderr


# ---- the values schema ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("featurizr.replicas=3", "additional properties 'featurizr' not allowed"),  # top-level typo
        ("monitorin.serviceMonitor.enabled=true", "additional properties 'monitorin' not allowed"),
        ("collector.privilegd=true", "additional properties 'privilegd' not allowed"),  # nested typo
        ("monitoring.serviceMonitor.enable=true", "additional properties 'enable' not allowed"),
        ("explainer.tokens.existingSecrte=x", "additional properties 'existingSecrte' not allowed"),
    ],
)
def test_schema_rejects_a_typo(setting: str, message: str) -> None:
    err = _refused("--set", setting)
    assert "schema" in err
    assert message in err


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (("--set", "featurizer.replicas=three"), "/featurizer/replicas"),
        (("--set-string", "collector.privileged=true"), "/collector/privileged"),
        (("--set", "scorer.autoscaling.maxReplicas=1.5"), "/scorer/autoscaling/maxReplicas"),
        (("--set", "kafka.bootstrapServers=null"), "/kafka"),
        (("--set", "siem.output=splunk"), "/siem/output"),
        (("--set", "scorer.image.digest=sha256:short"), "/scorer/image/digest"),
        (("--set", "explainer.tokens.values[0].role=root,explainer.tokens.values[0].token=x"), "/explainer/tokens"),
    ],
)
def test_schema_rejects_a_wrong_type_or_value(args: tuple[str, ...], where: str) -> None:
    err = _refused(*args)
    assert "schema" in err
    assert where in err


# ---- explainer tokens ------------------------------------------------------------------------------


def test_existing_token_secret_is_mounted_and_no_placeholder_is_rendered() -> None:
    out = template("--set", "explainer.tokens.existingSecret=my-explainer-tokens")
    assert out.returncode == 0, out.stderr
    assert "REPLACE-ME" not in out.stdout
    assert "placeholder" not in out.stdout.lower()
    docs = parse(out.stdout)
    assert of_kind(docs, "Secret") == []
    dep = named(docs, "Deployment", "minerlens-explainer")
    tokens = next(v for v in pod_spec(dep)["volumes"] if v["name"] == "tokens")
    assert tokens["secret"]["secretName"] == "my-explainer-tokens"
    assert "items" not in tokens["secret"]  # its key is "tokens": the file appears as .../tokens


def test_existing_token_secret_with_another_key() -> None:
    docs = _render(
        "--set", "explainer.tokens.existingSecret=vault-synced", "--set", "explainer.tokens.existingSecretKey=t"
    )
    tokens = next(
        v for v in pod_spec(named(docs, "Deployment", "minerlens-explainer"))["volumes"] if v["name"] == "tokens"
    )
    assert tokens["secret"]["secretName"] == "vault-synced"
    assert tokens["secret"]["items"] == [{"key": "t", "path": "tokens"}]


def test_tokens_from_values_are_accepted_by_the_explainer(tmp_path: Path) -> None:
    from minerlens_explainer.auth import parse_tokens

    admin, read = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    values = tmp_path / "tokens.yaml"
    values.write_text(
        yaml.safe_dump(
            {"explainer": {"tokens": {"values": [{"role": "admin", "token": admin}, {"role": "read", "token": read}]}}}
        )
    )
    secret = named(_render("-f", str(values)), "Secret", "minerlens-explainer-tokens")
    entries = parse_tokens(secret["stringData"]["tokens"])
    assert sorted(e.role for e in entries) == ["admin", "read"]


def test_tokens_from_two_sources_are_refused() -> None:
    err = _refused(
        "--set", "explainer.tokens.existingSecret=x",
        "--set", "explainer.tokens.values[0].role=read,explainer.tokens.values[0].token=" + secrets.token_urlsafe(32),
    )  # fmt: skip
    assert "not both" in err


# ---- images ----------------------------------------------------------------------------------------


def test_images_default_to_the_app_version() -> None:
    docs = _render()
    app = _chart()["appVersion"]
    for wl in workloads(docs):
        service = wl["metadata"]["name"].removeprefix("minerlens-")
        for c in containers(wl):
            assert c["image"] == f"minerlens/{service}:{app}"
            assert c["imagePullPolicy"] == "IfNotPresent"


def test_images_use_registry_tag_and_digest_values() -> None:
    docs = _render(
        "--set", "global.imageRegistry=registry.example.com:5000/sec/",
        "--set", "global.imageTag=1.4.2",
        "--set", f"scorer.image.tag=1.5.0,scorer.image.digest={DIGEST}",
        "--set", "collector.image.registry=node-registry.example.com,collector.image.pullPolicy=Always",
        "--set", "explainer.image.repository=acme/minerlens-explainer",
        "--set", "global.imagePullSecrets[0]=regcred",
    )  # fmt: skip
    assert _image(docs, "minerlens-scorer") == f"registry.example.com:5000/sec/minerlens/scorer:1.5.0@{DIGEST}"
    assert _image(docs, "minerlens-featurizer") == "registry.example.com:5000/sec/minerlens/featurizer:1.4.2"
    assert _image(docs, "minerlens-collector") == "node-registry.example.com/minerlens/collector:1.4.2"
    assert _image(docs, "minerlens-explainer") == "registry.example.com:5000/sec/acme/minerlens-explainer:1.4.2"
    ds = named(docs, "DaemonSet", "minerlens-collector")
    assert pod_spec(ds)["containers"][0]["imagePullPolicy"] == "Always"
    for wl in workloads(docs):
        assert pod_spec(wl)["imagePullSecrets"] == [{"name": "regcred"}]


def test_production_example_pulls_from_the_registry() -> None:
    docs = _render("-f", str(CHART / "examples" / "production.yaml"))
    for wl in workloads(docs):
        service = wl["metadata"]["name"].removeprefix("minerlens-")
        assert _image(docs, wl["metadata"]["name"]) == f"registry.example.com/minerlens/{service}:0.1.0"
    hpas = {h["metadata"]["name"]: h["spec"] for h in of_kind(docs, "HorizontalPodAutoscaler")}
    assert {n: (s["minReplicas"], s["maxReplicas"]) for n, s in hpas.items()} == {
        "minerlens-featurizer": (3, 12),
        "minerlens-scorer": (3, 12),
    }


# ---- models, configuration, scheduling --------------------------------------------------------------


def test_existing_models_claim() -> None:
    docs = _render("--set", "models.existingClaim=shared-models")
    assert of_kind(docs, "PersistentVolumeClaim") == []
    for name in MODEL_USERS:
        models = next(v for v in pod_spec(named(docs, "Deployment", name))["volumes"] if v["name"] == "models")
        assert models["persistentVolumeClaim"] == {"claimName": "shared-models", "readOnly": True}


def test_created_models_claim_takes_size_and_class() -> None:
    docs = _render("--set", "models.size=10Gi,models.storageClassName=efs-sc,models.keep=false")
    (pvc,) = of_kind(docs, "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == "minerlens-models"
    assert pvc["spec"]["storageClassName"] == "efs-sc"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert "annotations" not in pvc["metadata"]
    kept = named(_render(), "PersistentVolumeClaim", "minerlens-models")
    assert kept["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}  # uninstall keeps the models


def test_model_signing_key_is_mounted_where_models_are_read() -> None:
    from minerlens_core.models.signing import PUBKEY_ENV

    docs = _render("--set", "models.publicKey.configMap=minerlens-model-pubkey")
    for name in MODEL_USERS:
        dep = named(docs, "Deployment", name)
        (c,) = pod_spec(dep)["containers"]
        path = next(e["value"] for e in c["env"] if e["name"] == PUBKEY_ENV)
        mount = next(m for m in c["volumeMounts"] if m["name"] == "model-pubkey")
        assert path == mount["mountPath"] + "/models.pub"
        volume = next(v for v in pod_spec(dep)["volumes"] if v["name"] == "model-pubkey")
        assert volume["configMap"]["name"] == "minerlens-model-pubkey"
    for wl in workloads(docs):
        kubernetes_validate.validate(wl, kubernetes_validate.latest_version(), strict=True)
    assert PUBKEY_ENV not in str(_render())  # off by default


def test_service_config_and_extra_env(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump({
            "cluster": "prod-eu",
            "kafka": {"bootstrapServers": "kafka-0.example:9093,kafka-1.example:9093", "securityProtocol": "SSL"},
            "commonConfig": {"MINERLENS_KAFKA_COMPRESSION": "lz4"},
            "featurizer": {"config": {"MINERLENS_FEATURIZER_STANDBY_REPLICAS": 2}},
            "siem": {"output": "alertmanager", "config": {"MINERLENS_SIEM_WEBHOOK_URL": "http://alertmanager.monitoring:9093"}},
            "scorer": {"extraEnv": [{"name": "MINERLENS_SCORER_RELOAD_INTERVAL_S", "value": "30"}]},
            "responder": {"config": {"MINERLENS_RESPONDER_MODE": "dry-run"}},
        })
    )  # fmt: skip
    docs = _render("-f", str(values))
    featurizer = env_of(named(docs, "Deployment", "minerlens-featurizer"), docs)
    assert featurizer["MINERLENS_CLUSTER"] == "prod-eu"
    assert featurizer["MINERLENS_KAFKA_BOOTSTRAP"] == "kafka-0.example:9093,kafka-1.example:9093"
    assert featurizer["MINERLENS_KAFKA_SECURITY_PROTOCOL"] == "SSL"
    assert featurizer["MINERLENS_KAFKA_COMPRESSION"] == "lz4"
    assert featurizer["MINERLENS_FEATURIZER_STANDBY_REPLICAS"] == "2"
    siem = env_of(named(docs, "Deployment", "minerlens-siem"), docs)
    assert siem["MINERLENS_SIEM_OUTPUT"] == "alertmanager"
    assert siem["MINERLENS_SIEM_WEBHOOK_URL"] == "http://alertmanager.monitoring:9093"
    assert env_of(named(docs, "Deployment", "minerlens-scorer"), docs)["MINERLENS_SCORER_RELOAD_INTERVAL_S"] == "30"
    assert env_of(named(docs, "Deployment", "minerlens-responder"), docs)["MINERLENS_RESPONDER_MODE"] == "dry-run"
    collector = env_of(named(docs, "DaemonSet", "minerlens-collector"), docs)
    assert collector["MINERLENS_KAFKA_BOOTSTRAP"] == "kafka-0.example:9093,kafka-1.example:9093"


@pytest.mark.parametrize(
    "setting",
    [
        "featurizer.config.MINERLENS_FEATURIZER_WEB_PORT=7000",  # featurizer.port sets it
        "collector.config.MINERLENS_COLLECTOR_PROC_ROOT=/proc",  # the mount sets it
        "commonConfig.MINERLENS_CLUSTER=x",  # cluster sets it
        "responder.config.MINERLENS_RESPONDER_HTTP_PORT=1",
    ],
)
def test_settings_the_chart_derives_cannot_be_overridden_by_config(setting: str) -> None:
    assert "is set by the chart" in _refused("--set", setting)


def test_webhook_outputs_need_a_url() -> None:
    assert "MINERLENS_SIEM_WEBHOOK_URL" in _refused("--set", "siem.output=falcosidekick")


def test_ports_follow_the_values() -> None:
    docs = _render("--set", "scorer.port=9500,explainer.port=8443")
    scorer = named(docs, "Deployment", "minerlens-scorer")
    assert pod_spec(scorer)["containers"][0]["ports"][0]["containerPort"] == 9500
    env = env_of(scorer, docs)
    assert env["MINERLENS_SCORER_HTTP_PORT"] == "9500"
    assert env["MINERLENS_SCORER_EXPLAIN_BASE_URL"] == "http://minerlens-explainer.minerlens.svc:8443"
    assert scorer["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9500"
    assert named(docs, "Service", "minerlens-explainer")["spec"]["ports"][0]["port"] == 8443
    api = named(docs, "NetworkPolicy", "explainer-api")
    assert api["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8443}]
    metrics = named(docs, "NetworkPolicy", "metrics-from-monitoring")
    assert {p["port"] for p in metrics["spec"]["ingress"][0]["ports"]} == {6066, 8443, 9466, 9468, 9500}


def test_a_config_change_rolls_only_the_pods_that_load_it() -> None:
    def checksums(*args: str) -> dict[str, str]:
        return {
            wl["metadata"]["name"]: wl["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for wl in workloads(_render(*args))
        }

    before = checksums()
    after = checksums("--set", "featurizer.config.MINERLENS_FEATURIZER_STANDBY_REPLICAS=2")
    assert [n for n in before if before[n] != after[n]] == ["minerlens-featurizer"]
    everyone = checksums("--set", "cluster=prod")  # the common ConfigMap: every pod
    assert all(before[n] != everyone[n] for n in before)


def test_scheduling_values_reach_the_pods(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ml"]}]}
    ]}}}  # fmt: skip
    values.write_text(
        yaml.safe_dump({
            "explainer": {
                "nodeSelector": {"pool": "ml"},
                "tolerations": [{"key": "ml", "operator": "Exists", "effect": "NoSchedule"}],
                "affinity": affinity,
            },
            "collector": {"nodeSelector": {"kubernetes.io/os": "linux"}},
        })
    )  # fmt: skip
    docs = _render("-f", str(values))
    spec = pod_spec(named(docs, "Deployment", "minerlens-explainer"))
    assert spec["nodeSelector"] == {"pool": "ml"}
    assert spec["tolerations"] == [{"key": "ml", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["affinity"] == affinity
    assert spec["topologySpreadConstraints"][0]["labelSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "minerlens-explainer"}
    }
    collector = pod_spec(named(docs, "DaemonSet", "minerlens-collector"))
    assert collector["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert collector["tolerations"] == [{"operator": "Exists"}]  # still every node
    assert "nodeSelector" not in pod_spec(named(docs, "Deployment", "minerlens-scorer"))


def test_collector_host_paths_and_capabilities_follow_the_values() -> None:
    docs = _render(
        "--set",
        "collector.hostPaths.tracefs=/sys/kernel/debug/tracing",
        "--set",
        "collector.capabilities.add={SYS_ADMIN}",
    )
    ds = named(docs, "DaemonSet", "minerlens-collector")
    host = {v["name"]: v["hostPath"]["path"] for v in pod_spec(ds)["volumes"] if "hostPath" in v}
    assert host["tracefs"] == "/sys/kernel/debug/tracing"
    (c,) = pod_spec(ds)["containers"]
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["SYS_ADMIN"]}
    assert "allowPrivilegeEscalation" not in c["securityContext"]  # the API refuses false with SYS_ADMIN


def test_autoscaling_off_and_bounds_checked() -> None:
    docs = _render("--set", "featurizer.autoscaling.enabled=false,featurizer.replicas=5")
    assert [h["metadata"]["name"] for h in of_kind(docs, "HorizontalPodAutoscaler")] == ["minerlens-scorer"]
    assert named(docs, "Deployment", "minerlens-featurizer")["spec"]["replicas"] == 5
    assert "replicas" not in named(docs, "Deployment", "minerlens-scorer")["spec"]
    assert "maxReplicas" in _refused("--set", "scorer.autoscaling.minReplicas=5,scorer.autoscaling.maxReplicas=4")


def test_uninstall_keeps_the_namespaces_unless_told_otherwise() -> None:
    """helm uninstall would delete a release's Namespaces, and with them the models claim and Redis."""
    for ns in of_kind(_render(), "Namespace"):
        assert ns["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    for ns in of_kind(_render("--set", "namespaces.keep=false"), "Namespace"):
        assert "annotations" not in ns["metadata"]


def test_namespaces_and_network_policies_can_be_left_to_the_platform() -> None:
    docs = _render("--set", "namespaces.create=false,networkPolicy.enabled=false")
    assert of_kind(docs, "Namespace") == []
    assert of_kind(docs, "NetworkPolicy") == []
    assert len(workloads(docs)) == 6


def test_explainer_is_not_scraped_without_a_way_to_authenticate() -> None:
    docs = _render("--set", "monitoring.serviceMonitor.enabled=true")
    names = {m["metadata"]["name"] for m in of_kind(docs, "ServiceMonitor")}
    assert "minerlens-explainer" not in names
    assert len(names) == 5
    public = _render("--set", "monitoring.serviceMonitor.enabled=true,explainer.metricsPublic=true")
    monitor = named(public, "ServiceMonitor", "minerlens-explainer")
    assert "authorization" not in monitor["spec"]["endpoints"][0]
    assert (
        env_of(named(public, "Deployment", "minerlens-explainer"), public)["MINERLENS_EXPLAINER_METRICS_PUBLIC"]
        == "true"
    )


def test_the_docs_start_with_helm_install() -> None:
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    first_command = deploy.split("```bash\n", 1)[1].splitlines()[0]
    assert (
        first_command
        == "helm install minerlens deploy/helm/minerlens -n minerlens --create-namespace -f my-values.yaml"
    )
