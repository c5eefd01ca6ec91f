#!/usr/bin/env bash
# A local Redis for developers and CI: loopback only, daemonized, persistent (AOF, fsync every second).
#
#   scripts/redis.sh start     start (no-op when already running) and wait until it answers PING
#   scripts/redis.sh stop      stop the instance recorded in the pid file (never anything else)
#   scripts/redis.sh status    exit 0 when running
#
# Environment (defaults):
#   REDIS_PORT=16379                                  127.0.0.1 only
#   REDIS_HOME_DIR=<repo>/.local/redis-$REDIS_PORT    redis.pid, redis.log, working dir
#   REDIS_SERVER=redis-server                         the server binary (Debian package redis-server)
#   REDIS_MAXMEMORY=256mb                             memory cap (allkeys-lru beyond it)
#   REDIS_PERSISTENCE=aof                             aof: append-only file in REDIS_HOME_DIR, fsync every
#                                                     second (a restart keeps the explainer's pod store; a
#                                                     crash loses at most the last second); none: memory only
#
# Install redis-server with scripts/install-system-deps.sh.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "${SCRIPT_DIR}/.." && pwd)

REDIS_PORT=${REDIS_PORT:-16379}
REDIS_HOME_DIR=${REDIS_HOME_DIR:-${REPO_ROOT}/.local/redis-${REDIS_PORT}}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_MAXMEMORY=${REDIS_MAXMEMORY:-256mb}
REDIS_PERSISTENCE=${REDIS_PERSISTENCE:-aof}
HOST=127.0.0.1
PID_FILE="${REDIS_HOME_DIR}/redis.pid"
LOG_FILE="${REDIS_HOME_DIR}/redis.log"

log() { printf 'redis.sh[%s]: %s\n' "${REDIS_PORT}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# PID of this instance when it is running, else nothing (and a stale pid file is removed).
running_pid() {
    [[ -f "${PID_FILE}" ]] || return 1
    local pid
    pid=$(<"${PID_FILE}")
    if [[ "${pid}" =~ ^[0-9]+$ ]] && [[ -r "/proc/${pid}/cmdline" ]] \
        && tr '\0' ' ' <"/proc/${pid}/cmdline" | grep -qF -- "redis-server ${HOST}:${REDIS_PORT}"; then
        echo "${pid}"
        return 0
    fi
    rm -f "${PID_FILE}"
    return 1
}

port_open() {
    (exec 3<>"/dev/tcp/${HOST}/${REDIS_PORT}") 2>/dev/null
}

# PING over a raw socket (no redis-cli needed); succeeds on +PONG.
ping() (
    exec 3<>"/dev/tcp/${HOST}/${REDIS_PORT}" 2>/dev/null || exit 1
    printf 'PING\r\n' >&3
    IFS= read -r -t 2 reply <&3 || exit 1
    [[ "${reply%$'\r'}" == "+PONG" ]]
)

show_log_tail() {
    [[ -f "${LOG_FILE}" ]] || return 0
    echo "----- last 50 lines of ${LOG_FILE} -----" >&2
    tail -n 50 "${LOG_FILE}" >&2
    echo "-----" >&2
}

cmd_start() {
    local pid
    if pid=$(running_pid); then
        log "already running (pid ${pid})"
        return 0
    fi
    command -v "${REDIS_SERVER}" >/dev/null 2>&1 \
        || die "${REDIS_SERVER} not found: install it with scripts/install-system-deps.sh (Debian package redis-server)"
    port_open && die "port ${HOST}:${REDIS_PORT} is already in use by another process (no live pid in ${PID_FILE})"
    mkdir -p "${REDIS_HOME_DIR}"
    # Everything on the command line: no config file to keep in sync. `dir` keeps the append-only
    # file (and any dump) in REDIS_HOME_DIR, out of the work tree's root; `save ""` turns RDB snapshots
    # off (the AOF is the persistence; Redis rewrites it in the background when it grows).
    local persistence
    case "${REDIS_PERSISTENCE}" in
        aof) persistence=(--appendonly yes --appendfsync everysec --save "") ;;
        none) persistence=(--appendonly no --save "") ;;
        *) die "REDIS_PERSISTENCE must be aof or none, not ${REDIS_PERSISTENCE}" ;;
    esac
    "${REDIS_SERVER}" --port "${REDIS_PORT}" --bind "${HOST}" --protected-mode yes \
        --daemonize yes --pidfile "${PID_FILE}" --logfile "${LOG_FILE}" --dir "${REDIS_HOME_DIR}" \
        "${persistence[@]}" \
        --maxmemory "${REDIS_MAXMEMORY}" --maxmemory-policy allkeys-lru \
        || { show_log_tail; die "${REDIS_SERVER} failed to start"; }
    local i
    for ((i = 0; i < 300; i++)); do  # loading a large append-only file takes a while
        if running_pid >/dev/null && ping; then
            log "ready: pid $(running_pid) at redis://${HOST}:${REDIS_PORT}/0"
            return 0
        fi
        sleep 0.1
    done
    show_log_tail
    die "not ready after 30 s"
}

cmd_stop() {
    local pid
    if ! pid=$(running_pid); then
        log "not running"
        return 0
    fi
    log "stopping pid ${pid}"
    kill -TERM "${pid}" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "${pid}" 2>/dev/null && (( SECONDS < deadline )); do
        sleep 0.1
    done
    if kill -0 "${pid}" 2>/dev/null; then
        log "still running after 10 s, sending SIGKILL"
        kill -KILL "${pid}" 2>/dev/null || true
    fi
    rm -f "${PID_FILE}"
    log "stopped"
}

cmd_status() {
    local pid
    if pid=$(running_pid); then
        echo "running: pid ${pid}, redis://${HOST}:${REDIS_PORT}/0, home ${REDIS_HOME_DIR}"
        return 0
    fi
    echo "stopped (redis://${HOST}:${REDIS_PORT}/0)"
    return 3
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
