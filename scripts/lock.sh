#!/usr/bin/env bash
# Lock every service image's third-party dependencies, with hashes: requirements/lock/<service>.txt.
#
#   bash scripts/lock.sh            (make lock)   re-resolve and rewrite the six lock files
#   bash scripts/lock.sh --check                  exit 1 if a lock file is not what resolving now would write
#
# uv resolves each service's own packages (packages/core with the service's extras, the service, and
# training[explain] for the explainer) for CPython 3.11 on x86_64 Linux (manylinux_2_28, the glibc of the
# image's Debian bookworm base) and writes the pinned, hashed third-party set; the project's own packages
# are left out (the Dockerfile installs them from the source tree with --no-deps). The Dockerfile installs
# a lock with `pip install --require-hashes`, so an image gets exactly these files or fails.
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
)
check=0
[[ "${1:-}" == "--check" ]] && check=1
status=0
work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
for svc in collector featurizer scorer explainer siem responder; do
    tr ' ' '\n' <<<"${INPUTS[${svc}]}" >"${work}/${svc}.in"
    "${UV}" pip compile "${work}/${svc}.in" --quiet --generate-hashes --no-header --no-annotate \
        --no-emit-package minerlens-core --no-emit-package "minerlens-${svc}" --no-emit-package minerlens-training \
        --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o "${work}/${svc}.txt"
    {
        echo "# minerlens ${svc} image: third-party dependencies, pinned with hashes (bash scripts/lock.sh)."
        echo "# Resolved from: ${INPUTS[${svc}]} (the project's own packages are installed with --no-deps)."
        cat "${work}/${svc}.txt"
    } >"${work}/${svc}.lock"
    if ((check)); then
        if ! diff -q "${work}/${svc}.lock" "${OUT}/${svc}.txt" >/dev/null 2>&1; then
            echo "lock.sh: ${OUT}/${svc}.txt is stale (run: bash scripts/lock.sh)" >&2
            status=1
        fi
    else
        mv "${work}/${svc}.lock" "${OUT}/${svc}.txt"
        echo "lock.sh: ${OUT}/${svc}.txt ($(grep -c '==' "${OUT}/${svc}.txt") packages)" >&2
    fi
done
exit "${status}"
