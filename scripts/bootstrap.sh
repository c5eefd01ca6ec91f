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
