#!/usr/bin/env bash
# The main job (for now, issue #2): real workloads run as emulated Kubernetes pods, the collector
# captures their syscalls from the kernel (tracefs raw_syscalls:sys_enter), streams per-pod batches
# to a real local Kafka, and a consumer prints what arrived per pod. Stops everything it started.
#
#   DEMO_SECONDS=40 bash scripts/demo.sh
set -euo pipefail
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "${ROOT}"
SECONDS_TOTAL=${DEMO_SECONDS:-40}
REDIS_DEMO_PORT=${REDIS_DEMO_PORT:-16399}
ML=.venv/bin/minerlens

bash scripts/bootstrap.sh
[[ ${EUID} -eq 0 ]] || { echo "demo.sh: run as root (kernel tracing and cgroups need it)" >&2; exit 1; }
[[ -e /sys/kernel/tracing/trace ]] || mount -t tracefs nodev /sys/kernel/tracing || true

pids=()
started_kafka=0
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "${pid}" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "${pid}" 2>/dev/null || true; done
    if (( started_kafka )); then bash scripts/kafka.sh stop || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! bash scripts/kafka.sh status >/dev/null 2>&1; then
    bash scripts/kafka.sh start
    started_kafka=1
fi
mkdir -p .local/demo

echo "== collector: tracefs capture of every pod on this node -> Kafka (metrics on 127.0.0.1:9464)"
MINERLENS_COLLECTOR_HTTP_PORT=9464 "${ML}" collector run > .local/demo/collector.log 2>&1 &
pids+=($!)
sleep 2

echo "== pods: shop/redis-0 (redis-server, driven by redis-benchmark from outside the pod)"
"${ML}" pod run shop/redis-0 --seconds "${SECONDS_TOTAL}" -- \
    redis-server --port "${REDIS_DEMO_PORT}" --bind 127.0.0.1 --save "" --appendonly no \
    > .local/demo/redis-pod.log 2>&1 &
pids+=($!)
echo "== pods: batch/compress-0 (gzip compressing system binaries in a loop, CPU-limited to 0.5 core)"
"${ML}" pod run batch/compress-0 --seconds "${SECONDS_TOTAL}" --cpu-limit 0.5 -- \
    sh -c 'while :; do gzip -6 -c /usr/bin/* > /dev/null 2>&1; done' \
    > .local/demo/compress-pod.log 2>&1 &
pids+=($!)
sleep 1
( for _ in $(seq 1 50); do redis-cli -p "${REDIS_DEMO_PORT}" ping >/dev/null 2>&1 && break; sleep 0.1; done
  exec timeout "${SECONDS_TOTAL}" redis-benchmark -p "${REDIS_DEMO_PORT}" -q -c 4 -n 100000000 -t set,get,incr,lpush \
      > /dev/null 2>&1 ) &
pids+=($!)

echo "== what reaches Kafka, per pod (topic minerlens.syscalls.v1):"
"${ML}" collector watch --seconds "$(( SECONDS_TOTAL - 4 ))"
echo "== collector metrics:"
curl -s 127.0.0.1:9464/metrics | grep -E '^minerlens_collector_(events|batches|drop|spool|pods|traced)' || true
