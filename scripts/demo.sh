#!/usr/bin/env bash
# The main job: real workloads from the lab catalog run as emulated Kubernetes pods (a no-yield Monero
# miner, a busy web pod with a miner hidden inside it as a second process, and a busy database); the
# collector traces their syscalls in the kernel (tracefs raw_syscalls:sys_enter) and samples their cgroups
# and processes every second, and streams per-pod batches and samples to a real local Kafka; the
# featurizer (Faust) turns them into per-pod and per-process feature windows, the scorer (ONNX Runtime)
# into verdicts and OCSF alerts naming the process; the explainer (FastAPI + Redis) says why the miner pod
# was flagged. Prints a live per-pod table and ends with the alerts and their reasons. Stops everything it
# started (Ctrl-C too).
#
#   DEMO_SECONDS=60 bash scripts/demo.sh
#   DEMO_XMRIG=1 bash scripts/demo.sh    # opt-in: the real XMRig 6.16.0 (--cpu-no-yield) as the miner pod,
#                                        # in a network namespace with nothing but loopback (never by default)
#   DEMO_HOLD=1 bash scripts/demo.sh     # keep the services up afterwards for the operator console
#                                        # (http://127.0.0.1:18080/console/, token in .local/demo/console-token)
set -euo pipefail
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "${ROOT}"
SECONDS_TOTAL=${DEMO_SECONDS:-60}
MINER_WORKLOAD=miner-randomx-no-yield
MINER_TEXT="a RandomX miner whose hashing threads make no syscall (XMRig --cpu-no-yield style)"
if [[ ${DEMO_XMRIG:-0} == 1 ]]; then
    MINER_WORKLOAD=xmrig-no-yield
    MINER_TEXT="the real XMRig 6.16.0, --cpu-no-yield, in a loopback-only network namespace (DEMO_XMRIG=1)"
fi
MODEL_DIR=${MINERLENS_MODEL_DIR:-${ROOT}/models/default}
EXPLAINER_PORT=${EXPLAINER_PORT:-18080}
ML=.venv/bin/minerlens
OUT=.local/demo

bash scripts/bootstrap.sh
[[ ${EUID} -eq 0 ]] || { echo "demo.sh: run as root (kernel tracing and cgroups need it)" >&2; exit 1; }
[[ -e /sys/kernel/tracing/trace ]] || mount -t tracefs nodev /sys/kernel/tracing || true

pids=()
started=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "${pid}" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "${pid}" 2>/dev/null || true; done
    for svc in "${started[@]}"; do bash "scripts/${svc}.sh" stop >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for svc in kafka redis; do
    if ! bash "scripts/${svc}.sh" status >/dev/null 2>&1; then
        bash "scripts/${svc}.sh" start
        started+=("${svc}")
    fi
done
rm -rf "${OUT}" && mkdir -p "${OUT}"
# a fresh read token for this run (the explainer refuses to start without one)
TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
ADMIN_TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')  # the console's actions: feedback, suppressions
printf 'read:%s\nadmin:%s\n' "${TOKEN}" "${ADMIN_TOKEN}" > "${OUT}/tokens" && chmod 600 "${OUT}/tokens"
printf '%s\n' "${ADMIN_TOKEN}" > "${OUT}/console-token" && chmod 600 "${OUT}/console-token"

export MINERLENS_KAFKA_BOOTSTRAP=${MINERLENS_KAFKA_BOOTSTRAP:-127.0.0.1:19092}

echo "== services: collector (tracefs) -> featurizer (Faust) -> scorer (ONNX Runtime) -> explainer (FastAPI :${EXPLAINER_PORT})"
MINERLENS_COLLECTOR_HTTP_PORT=9464 "${ML}" collector run > "${OUT}/collector.log" 2>&1 &
pids+=($!)
MINERLENS_FEATURIZER_MODEL_DIR="${MODEL_DIR}" MINERLENS_FEATURIZER_DATA_DIR="${OUT}/featurizer" \
    "${ML}" featurizer run > "${OUT}/featurizer.log" 2>&1 &
pids+=($!)
MINERLENS_SCORER_MODELS_DIR="${ROOT}/models" "${ML}" scorer run > "${OUT}/scorer.log" 2>&1 &
pids+=($!)
MINERLENS_EXPLAINER_MODELS="${MODEL_DIR},${ROOT}/models/lstm-ae" MINERLENS_EXPLAINER_TOKENS_FILE="${OUT}/tokens" \
    MINERLENS_EXPLAINER_HOST=127.0.0.1 MINERLENS_EXPLAINER_PORT="${EXPLAINER_PORT}" \
    MINERLENS_EXPLAINER_REDIS_URL=redis://127.0.0.1:16379/0 "${ML}" explainer run > "${OUT}/explainer.log" 2>&1 &
pids+=($!)
sleep 8
echo "== operator console: http://127.0.0.1:${EXPLAINER_PORT}/console/  (sign in with the token in ${OUT}/console-token)"

echo "== pods (real programs from the lab catalog, ${SECONDS_TOTAL}s each; the pool asks for a share every 30 s):"
echo "   crypto/ci-runner-7  ${MINER_TEXT}"
echo "   shop/web-1          a busy web server (python http.server under load) with a miner hidden in it as a second process"
echo "   shop/postgres-0     PostgreSQL under pgbench (TPC-B-like)"
"${ML}" lab pod "${MINER_WORKLOAD}" --pod crypto/ci-runner-7 --seconds "${SECONDS_TOTAL}" > "${OUT}/pod-miner.log" 2>&1 &
pids+=($!)
"${ML}" lab pod miner-randomx-hidden-web --pod shop/web-1 --seconds "${SECONDS_TOTAL}" > "${OUT}/pod-web.log" 2>&1 &
pids+=($!)
"${ML}" lab pod postgres-pgbench --pod shop/postgres-0 --seconds "${SECONDS_TOTAL}" > "${OUT}/pod-postgres.log" 2>&1 &
pids+=($!)

# --max-age: a previous run's pods, still in the featurizer's state, are flushed when they time out: not shown
"${ML}" watch --seconds "$(( SECONDS_TOTAL + 10 ))" --max-age 30 --summary-json "${OUT}/summary.json"

echo "== why was crypto/ci-runner-7 flagged? (GET /v1/pods/crypto/ci-runner-7/explanation?method=shap)"
curl -sf -H "Authorization: Bearer ${TOKEN}" \
    "http://127.0.0.1:${EXPLAINER_PORT}/v1/pods/crypto/ci-runner-7/explanation?method=shap" \
    | .venv/bin/python -c 'import json,sys,textwrap; e=json.load(sys.stdin)["explanation"]; print(textwrap.fill(e["summary"], 110)); [print(" -", c["text"] or c["feature"], "(%s, %+.3f)" % (c["direction"], c["contribution"])) for c in e["contributions"][:6]]' \
    || echo "   (no explanation: see ${OUT}/explainer.log)"
echo "== logs and the per-pod summary: ${OUT}/"
if [[ ${DEMO_HOLD:-0} == 1 ]]; then
    echo "== DEMO_HOLD=1: the services stay up for the console (http://127.0.0.1:${EXPLAINER_PORT}/console/); Ctrl-C ends them"
    while sleep 3600; do :; done
fi
