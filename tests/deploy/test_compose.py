"""docker-compose.yml: valid against the Compose Specification schema, accepted by the real Compose
(``docker compose config``: schema + interpolation + references), and laid out safely."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.tools import CHART, ROOT, SERVICES, SETTINGS_PREFIXES, compose_binary, settings_fields

COMPOSE = ROOT / "docker-compose.yml"
POLICY = CHART / "files" / "responder-policy.yaml"  # the shipped responder policy: one copy, the chart's
REQUIRED = {
    "MINERLENS_CLUSTER": "lab",
    "MINERLENS_MODELS_DIR": str(ROOT / "models"),
    "MINERLENS_MODEL": "xgboost-time1s",
    "MINERLENS_TOKENS_FILE": str(POLICY),  # any file
}
ONE_SHOT = {"kafka-topics"}


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _schema() -> dict[str, Any]:
    """The Compose Specification schema vendored by check-jsonschema (read as a file: no import)."""
    spec = importlib.util.find_spec("check_jsonschema")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("check-jsonschema is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def _config(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MINERLENS_", "COMPOSE_"))}
    return subprocess.run(
        [compose_binary(), "-f", str(path), "config", "--format", "json"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_compose_file_matches_the_compose_spec_schema() -> None:
    jsonschema.validate(_compose(), _schema())


def test_schema_check_catches_a_typo() -> None:
    bad = copy.deepcopy(_compose())
    bad["services"]["collector"]["privilegd"] = True
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, _schema())


def test_docker_compose_config_accepts_it(tmp_path: Path) -> None:
    out = _config(COMPOSE, REQUIRED)
    assert out.returncode == 0, out.stderr
    resolved = json.loads(out.stdout)
    assert set(resolved["services"]) == {"kafka", "kafka-topics", "redis", *SERVICES}
    assert resolved["services"]["featurizer"]["environment"]["MINERLENS_FEATURIZER_MODEL_DIR"] == (
        "/models/xgboost-time1s"
    )
    # and refuses a broken file (an unknown key), so the check above means something
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(COMPOSE.read_text().replace("    pid: host\n", "    pid: host\n    privilegd: true\n"))
    assert _config(bad, REQUIRED).returncode != 0


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_required_settings_fail_loudly(missing: str) -> None:
    out = _config(COMPOSE, {k: v for k, v in REQUIRED.items() if k != missing})
    assert out.returncode != 0
    assert f"required variable {missing} is missing a value: set {missing}" in out.stderr


def test_images_are_pinned() -> None:
    for name, svc in _compose()["services"].items():
        image = svc["image"]
        assert not image.endswith(":latest"), name
        assert re.fullmatch(r"[\w./-]+:(\d+\.\d+\.\d+[\w.-]*|\$\{MINERLENS_VERSION:-\d+\.\d+\.\d+\})", image), image


def test_healthchecks_and_start_order() -> None:
    services = _compose()["services"]
    for name, svc in services.items():
        if name in ONE_SHOT:
            continue
        assert "test" in svc["healthcheck"], name
        for dep, cond in (svc.get("depends_on") or {}).items():
            want = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert cond == {"condition": want}, f"{name} -> {dep}"
    for name in SERVICES:
        assert services[name].get("depends_on"), name
    assert services["explainer"]["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_only_the_collector_is_privileged() -> None:
    services = _compose()["services"]
    collector = services["collector"]
    assert collector["privileged"] is True
    assert collector["pid"] == "host"
    mounts = {m["target"]: m for m in collector["volumes"]}
    assert mounts["/sys/kernel/tracing"]["source"] == "/sys/kernel/tracing"
    assert not mounts["/sys/kernel/tracing"].get("read_only")
    assert mounts["/host/proc"] == {"type": "bind", "source": "/proc", "target": "/host/proc", "read_only": True}
    assert mounts["/host/sys/fs/cgroup"]["read_only"] is True
    for name in set(SERVICES) - {"collector"}:
        svc = services[name]
        assert not svc.get("privileged"), name
        assert svc.get("pid") != "host", name
        assert svc["user"] == "10001:10001", name
        assert svc["read_only"] is True, name
        assert svc["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in svc["security_opt"], name


def test_responder_is_dry_run_with_the_shipped_policy() -> None:
    responder = _compose()["services"]["responder"]
    assert responder["environment"]["MINERLENS_RESPONDER_MODE"] == "dry-run"
    (policy,) = responder["volumes"]
    assert (ROOT / policy["source"]).resolve() == POLICY, (
        f"docker-compose.yml mounts {policy['source']}: the shipped policy is {POLICY.relative_to(ROOT)}"
    )
    assert POLICY.is_file()
    assert policy["read_only"] is True


def test_every_dockerfile_referenced_exists_and_settings_are_known() -> None:
    for name, svc in _compose()["services"].items():
        if "build" in svc:
            assert (ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file(), name
        for key in svc.get("environment") or {}:
            for prefix, (module, cls) in SETTINGS_PREFIXES.items():
                if key.startswith(prefix):
                    assert key.removeprefix(prefix) in settings_fields(module, cls), f"{name}: {key}"


def test_topics_created_with_partitions_include_every_topic() -> None:
    from minerlens_core import topics
    from minerlens_responder.audit import AUDIT_TOPIC

    script = "\n".join(_compose()["services"]["kafka-topics"]["command"])
    for topic in (*topics.ALL, AUDIT_TOPIC):
        assert topic in script
    assert "--partitions" in script
    for topic in topics.COMPACTED:
        line = next(x for x in script.splitlines() if topic in x)
        assert "cleanup.policy=compact" in line, f"{topic} must be created compacted"
