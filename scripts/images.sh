#!/usr/bin/env bash
# Build the six service images from the one Dockerfile (make images). The per-service differences are the
# build arguments below, and only here (docker-compose.yml passes the same; tests/deploy/test_images.py checks).
#
#   bash scripts/images.sh [SERVICE...]          build with docker (or buildah when there is no docker)
#   bash scripts/images.sh --args SERVICE        print that service's --build-arg list, one per line
#
# Environment: REGISTRY (default minerlens), TAG (default the chart's appVersion, 0.3.0), BUILDER (docker|buildah)
set -euo pipefail
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
SERVICES=(collector featurizer scorer explainer siem responder)
ML="torch onnxruntime sklearn shap lime xgboost"

build_args() {
    local svc=$1
    echo "SERVICE=${svc}"
    case "${svc}" in
        collector) echo "PORT=9464" "UID=0" "APT=strace=6.1-0.1" "FORBIDDEN=${ML} faust" ;;
        featurizer) echo "PORT=6066" "UID=10001" "APT=" "FORBIDDEN=${ML}" ;;
        scorer) echo "PORT=9466" "UID=10001" "APT=" "FORBIDDEN=torch sklearn shap lime xgboost faust" ;;
        explainer) echo "PORT=8080" "UID=10001" "APT=" "FORBIDDEN=torch faust" ;;
        siem) echo "PORT=9466" "UID=10001" "APT=" "FORBIDDEN=${ML} faust" ;;
        responder) echo "PORT=9468" "UID=10001" "APT=" "FORBIDDEN=${ML} faust" ;;
        *) echo "images.sh: unknown service ${svc}" >&2; return 2 ;;
    esac | sed 's/ \([A-Z]*=\)/\n\1/g'
}

if [[ "${1:-}" == "--args" ]]; then
    build_args "${2:?usage: images.sh --args SERVICE}"
    exit 0
fi
REGISTRY=${REGISTRY:-minerlens}
TAG=${TAG:-0.3.0}
BUILDER=${BUILDER:-$(command -v docker >/dev/null 2>&1 && echo docker || echo buildah)}
cd "${ROOT}"
for svc in "${@:-${SERVICES[@]}}"; do
    args=(--build-arg "VERSION=${TAG}")
    while IFS= read -r a; do args+=(--build-arg "${a}"); done < <(build_args "${svc}")
    echo "images.sh: ${REGISTRY}/${svc}:${TAG} (${BUILDER})" >&2
    if [[ "${BUILDER}" == buildah ]]; then
        buildah bud --format docker --layers "${args[@]}" -f Dockerfile -t "${REGISTRY}/${svc}:${TAG}" .
    else
        docker build "${args[@]}" -f Dockerfile -t "${REGISTRY}/${svc}:${TAG}" .
    fi
done
