#!/usr/bin/env bash
# Lock every service image's third-party dependencies, with hashes: requirements/lock/<service>.txt, and the
# development/CI environment's: requirements/lock/dev.txt.
#
#   bash scripts/lock.sh            (make lock)   re-resolve and rewrite the seven lock files
#   bash scripts/lock.sh --check                  exit 1 if a lock file is not what resolving now would write
#   bash scripts/lock.sh [--check] dev scorer     only these lock files
#
# uv resolves each service's own packages (packages/core with the service's extras, the service, and
# training[explain] for the explainer) for CPython 3.11 on x86_64 Linux (manylinux_2_28, the glibc of the
# image's Debian bookworm base) and writes the pinned, hashed third-party set; the project's own packages
# are left out (the Dockerfile installs them from the source tree with --no-deps). The Dockerfile installs
# a lock with `pip install --require-hashes`, so an image gets exactly these files or fails.
#
# dev: every project package with the extras scripts/bootstrap.sh installs, plus requirements/dev.txt (the
# bootstrap, hence CI, installs it with --require-hashes, then the project's packages editable with --no-deps).
# It keeps the versions it pins unless an input needs another: resolving prefers the pins of the existing
# lock (else, the first time, what .venv has installed), so re-locking after adding one dependency adds it
# and changes nothing else. torch is PyPI's (the CUDA build, as pip installs it); training[deep] needs it.
set -euo pipefail
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "${ROOT}"
UV=${UV:-.venv/bin/uv}
[[ -x "${UV}" ]] || UV=$(command -v uv) || { echo "lock.sh: uv is needed (.venv/bin/pip install uv)" >&2; exit 2; }
OUT=requirements/lock
mkdir -p "${OUT}"

declare -A INPUTS=(
    [collector]="./packages/core[kafka,http] ./services/collector[k8s]"
    [featurizer]="./packages/core[kafka] ./services/featurizer faust-streaming[rocksdict]>=0.15"
    [scorer]="./packages/core[kafka,onnx,http] ./services/scorer"
    [explainer]="./packages/core[kafka,onnx,http] ./training[explain] ./services/explainer"
    [siem]="./packages/core[kafka] ./services/siem"
    [responder]="./packages/core[kafka,http] ./services/responder"
    [dev]="./packages/core[kafka,onnx,http] ./services/collector[k8s] ./lab[pow] ./training[deep,explain] ./services/featurizer ./services/scorer ./services/explainer ./services/siem ./services/responder"
)
# the project's own distributions: installed from the tree (editable in dev), never from a lock
OWN=(minerlens-core minerlens-collector minerlens-featurizer minerlens-scorer minerlens-explainer minerlens-siem
     minerlens-responder minerlens-lab minerlens-training)
no_emit=()
for pkg in "${OWN[@]}"; do no_emit+=(--no-emit-package "${pkg}"); done
check=0
[[ "${1:-}" == "--check" ]] && check=1 && shift
names=("$@")
((${#names[@]})) || names=(collector featurizer scorer explainer siem responder dev)
for svc in "${names[@]}"; do
    [[ -n "${INPUTS[${svc}]:-}" ]] || { echo "lock.sh: no lock named ${svc}" >&2; exit 2; }
done
status=0
work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
for svc in "${names[@]}"; do
    tr ' ' '\n' <<<"${INPUTS[${svc}]}" >"${work}/${svc}.in"
    extra=()
    title="minerlens ${svc} image"
    from="${INPUTS[${svc}]}"
    if [[ "${svc}" == dev ]]; then
        extra=(requirements/dev.txt)
        title="minerlens development and CI environment (scripts/bootstrap.sh)"
        from="${from} -r requirements/dev.txt"
        # preferred versions: uv reads an existing output file's pins as preferences
        if [[ -f "${OUT}/dev.txt" ]]; then
            cp "${OUT}/dev.txt" "${work}/dev.txt"
        elif [[ -x .venv/bin/pip ]]; then
            .venv/bin/pip freeze --exclude-editable --disable-pip-version-check >"${work}/dev.txt"
        fi
    fi
    "${UV}" pip compile "${work}/${svc}.in" "${extra[@]}" --quiet --generate-hashes --no-header --no-annotate \
        "${no_emit[@]}" --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o "${work}/${svc}.txt"
    {
        echo "# ${title}: third-party dependencies, pinned with hashes (bash scripts/lock.sh)."
        echo "# Resolved from: ${from} (the project's own packages are installed with --no-deps)."
        cat "${work}/${svc}.txt"
    } >"${work}/${svc}.lock"
    if ((check)); then
        if ! diff -q "${work}/${svc}.lock" "${OUT}/${svc}.txt" >/dev/null 2>&1; then
            echo "lock.sh: ${OUT}/${svc}.txt is stale (run: bash scripts/lock.sh ${svc})" >&2
            status=1
        fi
    else
        mv "${work}/${svc}.lock" "${OUT}/${svc}.txt"
        echo "lock.sh: ${OUT}/${svc}.txt ($(grep -c '==' "${OUT}/${svc}.txt") packages)" >&2
    fi
done
exit "${status}"
