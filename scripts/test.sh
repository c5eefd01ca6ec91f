#!/usr/bin/env bash
# The test command: bootstrap, start a real Kafka (KRaft) and Redis on loopback, lint, run every test,
# stop what it started. Extra arguments go to pytest (e.g. scripts/test.sh -k cgroups).
set -euo pipefail
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "${ROOT}"

bash scripts/bootstrap.sh

started=()
cleanup() {
    local rc=$?
    for svc in "${started[@]}"; do
        bash "scripts/${svc}.sh" stop || true
    done
    exit "${rc}"
}
trap cleanup EXIT INT TERM

if ! bash scripts/kafka.sh status >/dev/null 2>&1; then
    bash scripts/kafka.sh start
    started+=(kafka)
fi
if ! bash scripts/redis.sh status >/dev/null 2>&1; then
    bash scripts/redis.sh start
    started+=(redis)
fi
# Kernel capture needs tracefs; mounting it is harmless when it is already there.
if [[ ! -e /sys/kernel/tracing/trace ]] && [[ ${EUID} -eq 0 ]]; then
    mount -t tracefs nodev /sys/kernel/tracing || echo "test.sh: tracefs not mountable; kernel tests will skip" >&2
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports
.venv/bin/mypy
MINERLENS_REQUIRE_SERVICES=1 MINERLENS_REQUIRE_KERNEL=1 MINERLENS_REQUIRE_IMAGE_BUILD=1 .venv/bin/python -m pytest "$@"
