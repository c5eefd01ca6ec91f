#!/usr/bin/env bash
# A real single-node Apache Kafka 4.x broker (KRaft, combined broker+controller) on loopback, for
# developers and CI. No Docker, no tarball: the jars come from Maven Central (infra/kafka/pom.xml).
#
#   scripts/kafka.sh fetch            download the jars into $KAFKA_CACHE (no-op when already there)
#   scripts/kafka.sh start            fetch, configure, format (first time only), start, wait until ready
#   scripts/kafka.sh stop [--purge]   SIGTERM the recorded PID (SIGKILL after 30 s); --purge deletes the data
#   scripts/kafka.sh status           exit 0 when running
#   scripts/kafka.sh wait             wait until the running broker answers a metadata request
#   scripts/kafka.sh logs [-f]        print (or follow) the broker log
#   scripts/kafka.sh topics           list the broker's topics
#
# Environment (defaults):
#   KAFKA_PORT=19092                  client listener, 127.0.0.1 only
#   KAFKA_CONTROLLER_PORT=19093       KRaft controller listener, 127.0.0.1 only
#   KAFKA_HOME_DIR=<repo>/.local/kafka-$KAFKA_PORT      data/, server.properties, kafka.pid, kafka.log
#   KAFKA_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/minerlens/kafka-<version>   libs/ (jars) and the probe
#   KAFKA_HEAP="-Xms256m -Xmx768m"    broker heap
#   KAFKA_JVM_OPTS=""                 extra broker JVM options
#   KAFKA_EXTRA_CONFIG=""             extra server.properties lines (newline-separated), appended last
#   KAFKA_READY_TIMEOUT=90            seconds `start`/`wait` wait for readiness
#   KAFKA_STOP_TIMEOUT=30             seconds `stop` waits after SIGTERM before SIGKILL
#   KAFKA_LOG_LINES=200               lines shown by `logs` and on failure
#   JAVA=java                         Java 17+ executable (JAVA_HOME/bin/java when JAVA_HOME is set)
#
# Several instances can run side by side: everything derives from KAFKA_PORT and KAFKA_HOME_DIR.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "${SCRIPT_DIR}/.." && pwd)
INFRA_DIR="${REPO_ROOT}/infra/kafka"
POM="${INFRA_DIR}/pom.xml"
LOG4J_CONF="${INFRA_DIR}/log4j2.properties"

KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\([^<]*\)</kafka.version>.*:\1:p' "${POM}" | head -n 1)
[[ -n "${KAFKA_VERSION}" ]] || { echo "kafka.sh: cannot read <kafka.version> from ${POM}" >&2; exit 1; }

KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19093}
KAFKA_HOME_DIR=${KAFKA_HOME_DIR:-${REPO_ROOT}/.local/kafka-${KAFKA_PORT}}
KAFKA_CACHE=${KAFKA_CACHE:-${XDG_CACHE_HOME:-${HOME}/.cache}/minerlens/kafka-${KAFKA_VERSION}}
KAFKA_HEAP=${KAFKA_HEAP:--Xms256m -Xmx768m}
KAFKA_JVM_OPTS=${KAFKA_JVM_OPTS:-}
KAFKA_EXTRA_CONFIG=${KAFKA_EXTRA_CONFIG:-}
KAFKA_READY_TIMEOUT=${KAFKA_READY_TIMEOUT:-90}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
KAFKA_LOG_LINES=${KAFKA_LOG_LINES:-200}
if [[ -z "${JAVA:-}" ]]; then
    if [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then JAVA="${JAVA_HOME}/bin/java"; else JAVA=java; fi
fi

HOST=127.0.0.1
BOOTSTRAP="${HOST}:${KAFKA_PORT}"
DATA_DIR="${KAFKA_HOME_DIR}/data"
CONF_FILE="${KAFKA_HOME_DIR}/server.properties"
PID_FILE="${KAFKA_HOME_DIR}/kafka.pid"
LOG_FILE="${KAFKA_HOME_DIR}/kafka.log"
LIBS_DIR="${KAFKA_CACHE}/libs"
PROBE_DIR="${KAFKA_CACHE}/probe"
CACHE_STAMP="${KAFKA_CACHE}/.complete"
CLASSPATH_LIBS="${LIBS_DIR}/*"
# Short-lived helper JVMs (storage format, readiness probe): start fast, stay small.
TOOL_JVM=(-Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto
          "-Dlog4j2.configurationFile=${LOG4J_CONF}")

# Milliseconds since the epoch (EPOCHREALTIME's radix follows the locale, so keep digits only).
now_ms() { local t=${EPOCHREALTIME//[!0-9]/}; echo $((10#${t} / 1000)); }
elapsed() { local ms=$(($(now_ms) - $1)); printf '%d.%01d' $((ms / 1000)) $((ms % 1000 / 100)); }

log() { printf 'kafka.sh[%s]: %s\n' "${KAFKA_PORT}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- readiness probe (compiled once into the cache) ------------------------------------------------
# A real round trip through the Admin API: describeCluster + listTopics must both answer.
PROBE_SOURCE=$(cat <<'JAVA'
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListTopicsOptions;

/** Exit 0 when the broker answers metadata requests; with --topics, print the (non-internal) topics. */
public final class KafkaReady {
    public static void main(String[] args) {
        String bootstrap = args[0];
        boolean listTopics = args.length > 1 && args[1].equals("--topics");
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "minerlens-kafka-ready");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "3000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "5000");
        props.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "200");
        try (Admin admin = Admin.create(props)) {
            DescribeClusterResult cluster = admin.describeCluster();
            String clusterId = cluster.clusterId().get(6, TimeUnit.SECONDS);
            int brokers = cluster.nodes().get(6, TimeUnit.SECONDS).size();
            Set<String> topics = new TreeSet<>(
                admin.listTopics(new ListTopicsOptions().listInternal(false)).names().get(6, TimeUnit.SECONDS));
            if (brokers < 1) {
                System.err.println("not ready: no broker in the cluster metadata yet");
                System.exit(1);
            }
            if (listTopics) {
                topics.forEach(System.out::println);
            } else {
                System.out.printf("ready: cluster %s, %d broker(s), %d topic(s)%n", clusterId, brokers, topics.size());
            }
        } catch (Exception e) {
            System.err.println("not ready: " + e);
            System.exit(1);
        }
    }
}
JAVA
)

cache_key() {
    { cat "${POM}"; printf '%s\n' "${PROBE_SOURCE}"; } | sha256sum | cut -d' ' -f1
}

check_java() {
    command -v "${JAVA}" >/dev/null 2>&1 || die "java not found (need Java 17+; run scripts/install-system-deps.sh)"
    local major
    major=$("${JAVA}" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
    major=${major%%.*}
    if ! [[ "${major}" =~ ^[0-9]+$ ]] || (( major < 17 )); then
        die "Kafka ${KAFKA_VERSION} brokers need Java 17+, '${JAVA}' is ${major:-unknown} (set JAVA or JAVA_HOME)"
    fi
}

cmd_fetch() {
    local key
    key=$(cache_key)
    if [[ -f "${CACHE_STAMP}" && "$(cat "${CACHE_STAMP}")" == "${key}" ]]; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not found (run scripts/install-system-deps.sh)"
    mkdir -p "$(dirname -- "${KAFKA_CACHE}")"
    # Serialise concurrent fetches of the same cache (two instances starting at once).
    local lock_fd
    exec {lock_fd}>"${KAFKA_CACHE}.lock"
    flock "${lock_fd}"
    if [[ -f "${CACHE_STAMP}" && "$(cat "${CACHE_STAMP}")" == "${key}" ]]; then
        exec {lock_fd}>&-
        return 0
    fi
    case "${KAFKA_CACHE}" in
        / | "${HOME}" | "${HOME}/" | "${REPO_ROOT}") die "refusing to use ${KAFKA_CACHE} as KAFKA_CACHE" ;;
    esac
    log "fetching Kafka ${KAFKA_VERSION} jars into ${KAFKA_CACHE}"
    local start
    start=$(now_ms)
    rm -rf "${KAFKA_CACHE}"
    mkdir -p "${LIBS_DIR}" "${PROBE_DIR}"
    # (sed: Maven 3.8 prints stray ANSI resets even with -B; pipefail keeps mvn's exit status)
    mvn -q -B -Dstyle.color=never -f "${POM}" dependency:copy-dependencies \
        -DoutputDirectory="${LIBS_DIR}" -DincludeScope=runtime 2>&1 | sed -e 's/\x1b\[[0-9;]*m//g' >&2 \
        || die "mvn could not fetch the Kafka jars (see above)"
    printf '%s\n' "${PROBE_SOURCE}" >"${PROBE_DIR}/KafkaReady.java"
    local javac="javac"
    [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/javac" ]] && javac="${JAVA_HOME}/bin/javac"
    "${javac}" -nowarn -cp "${CLASSPATH_LIBS}" -d "${PROBE_DIR}" "${PROBE_DIR}/KafkaReady.java" \
        || die "could not compile the readiness probe (need a JDK, not only a JRE)"
    printf '%s\n' "${key}" >"${CACHE_STAMP}"
    exec {lock_fd}>&-
    log "fetched $(find "${LIBS_DIR}" -name '*.jar' | wc -l) jars, $(du -sh "${LIBS_DIR}" | cut -f1), in $(elapsed "${start}") s"
}

# PID of this instance's broker when it is running, else nothing (and a stale pid file is removed).
running_pid() {
    [[ -f "${PID_FILE}" ]] || return 1
    local pid
    pid=$(<"${PID_FILE}")
    if [[ "${pid}" =~ ^[0-9]+$ ]] && [[ -r "/proc/${pid}/cmdline" ]] \
        && tr '\0' ' ' <"/proc/${pid}/cmdline" | grep -qF -- "kafka.Kafka ${CONF_FILE}"; then
        echo "${pid}"
        return 0
    fi
    rm -f "${PID_FILE}"
    return 1
}

# True while the process exists and is not a zombie (an orphaned broker whose new parent has not
# reaped it yet must not keep `stop` waiting).
alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ "${state}" != Z ]]
}

port_open() {
    (exec 3<>"/dev/tcp/${HOST}/$1") 2>/dev/null
}

probe() {
    timeout 30 "${JAVA}" "${TOOL_JVM[@]}" -cp "${PROBE_DIR}:${CLASSPATH_LIBS}" KafkaReady "${BOOTSTRAP}" "$@"
}

show_log_tail() {
    [[ -f "${LOG_FILE}" ]] || return 0
    echo "----- last ${KAFKA_LOG_LINES} lines of ${LOG_FILE} -----" >&2
    tail -n "${KAFKA_LOG_LINES}" "${LOG_FILE}" >&2
    echo "-----" >&2
}

write_config() {
    mkdir -p "${DATA_DIR}"
    cat >"${CONF_FILE}.tmp" <<EOF
# Generated by scripts/kafka.sh; edits are overwritten on the next start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@${HOST}:${KAFKA_CONTROLLER_PORT}
listeners=PLAINTEXT://${HOST}:${KAFKA_PORT},CONTROLLER://${HOST}:${KAFKA_CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://${HOST}:${KAFKA_PORT}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=${DATA_DIR}

# Single node: every internal topic at replication factor 1.
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

auto.create.topics.enable=true
delete.topic.enable=true
group.initial.rebalance.delay.ms=0

# After an unclean stop (SIGKILL, crash) the controller refuses the restarted broker's registration
# (DUPLICATE_BROKER_REGISTRATION) until the old session expires: 9 s by default, 5 s here.
broker.session.timeout.ms=5000
broker.heartbeat.interval.ms=1000

# Sized for a 2-core developer machine / CI runner.
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=1
EOF
    if [[ -n "${KAFKA_EXTRA_CONFIG}" ]]; then
        printf '\n# KAFKA_EXTRA_CONFIG (later keys win)\n%s\n' "${KAFKA_EXTRA_CONFIG}" >>"${CONF_FILE}.tmp"
    fi
    mv -f "${CONF_FILE}.tmp" "${CONF_FILE}"
}

format_storage() {
    [[ -f "${DATA_DIR}/meta.properties" ]] && return 0
    log "formatting ${DATA_DIR}"
    local cluster_id
    cluster_id=$("${JAVA}" "${TOOL_JVM[@]}" -cp "${CLASSPATH_LIBS}" kafka.tools.StorageTool random-uuid)
    "${JAVA}" "${TOOL_JVM[@]}" -cp "${CLASSPATH_LIBS}" kafka.tools.StorageTool format \
        -t "${cluster_id}" -c "${CONF_FILE}" >>"${LOG_FILE}" 2>&1 \
        || { show_log_tail; die "kafka-storage format failed"; }
}

wait_ready() {
    local start deadline=$((SECONDS + KAFKA_READY_TIMEOUT)) out
    start=${1:-$(now_ms)}
    while :; do
        if ! running_pid >/dev/null; then
            show_log_tail
            die "the broker exited before it was ready"
        fi
        if port_open "${KAFKA_PORT}" && out=$(probe 2>&1 | tail -n 1); then
            log "${out} at ${BOOTSTRAP} (ready $(elapsed "${start}") s after ${2:-the wait began})"
            return 0
        fi
        if (( SECONDS >= deadline )); then
            show_log_tail
            [[ -n "${out:-}" ]] && log "last probe: ${out}"
            die "not ready after ${KAFKA_READY_TIMEOUT} s; the broker is still running (pid $(running_pid))," \
                "see 'scripts/kafka.sh logs', stop it with 'scripts/kafka.sh stop'"
        fi
        sleep 0.5
    done
}

# Serialise start/stop of one instance (two CI steps or terminals racing). The fd is not passed on to
# the broker (see cmd_start), so the lock is released when this script exits.
LOCK_FD=
lock_instance() {
    mkdir -p "${KAFKA_HOME_DIR}"
    exec {LOCK_FD}>"${KAFKA_HOME_DIR}/kafka.lock"
    flock -w 120 "${LOCK_FD}" || die "another kafka.sh holds ${KAFKA_HOME_DIR}/kafka.lock"
}

cmd_start() {
    local pid
    lock_instance
    if pid=$(running_pid); then
        log "already running (pid ${pid})"
        wait_ready
        return 0
    fi
    local t0 port
    t0=$(now_ms)
    check_java
    for port in "${KAFKA_PORT}" "${KAFKA_CONTROLLER_PORT}"; do
        if port_open "${port}"; then
            die "port ${HOST}:${port} is already in use by another process (not this instance: no live pid in ${PID_FILE})"
        fi
    done
    cmd_fetch
    mkdir -p "${KAFKA_HOME_DIR}"
    write_config
    format_storage

    local heap jvm_opts
    read -r -a heap <<<"${KAFKA_HEAP}"
    read -r -a jvm_opts <<<"${KAFKA_JVM_OPTS}"
    printf '\n===== %s starting Kafka %s on %s =====\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        "${KAFKA_VERSION}" "${BOOTSTRAP}" >>"${LOG_FILE}"
    rm -f "${PID_FILE}"
    # The child writes its own PID and then execs java, so the pid file holds the JVM's PID even when
    # setsid has to fork. setsid + nohup: the broker survives the shell (and CI step) that started it.
    # shellcheck disable=SC2016  # $$ and $1 are expanded by the inner bash
    setsid nohup bash -c 'echo $$ >"$1"; shift; exec "$@"' kafka-launcher "${PID_FILE}" \
        "${JAVA}" -server "${heap[@]}" \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        "-Dlog4j2.configurationFile=${LOG4J_CONF}" "-Dkafka.logs.dir=${KAFKA_HOME_DIR}/logs" \
        "${jvm_opts[@]}" -cp "${CLASSPATH_LIBS}" kafka.Kafka "${CONF_FILE}" \
        >>"${LOG_FILE}" 2>&1 </dev/null {LOCK_FD}>&- &
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s "${PID_FILE}" ]] && break
        sleep 0.1
    done
    pid=$(running_pid) || { sleep 1; show_log_tail; die "the broker did not start"; }
    log "started pid ${pid} (home ${KAFKA_HOME_DIR}); waiting up to ${KAFKA_READY_TIMEOUT} s for it to be ready"
    wait_ready "${t0}" "'start'"
}

cmd_stop() {
    local purge=0 arg pid
    lock_instance
    for arg in "$@"; do
        case "${arg}" in
            --purge) purge=1 ;;
            *) die "stop: unknown option ${arg}" ;;
        esac
    done
    if pid=$(running_pid); then
        log "stopping pid ${pid}"
        local t0 how=SIGTERM
        t0=$(now_ms)
        kill -TERM "${pid}" 2>/dev/null || true
        local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
        while alive "${pid}" && (( SECONDS < deadline )); do
            sleep 0.2
        done
        if alive "${pid}"; then
            log "still running after ${KAFKA_STOP_TIMEOUT} s, sending SIGKILL"
            kill -KILL "${pid}" 2>/dev/null || true
            how=SIGKILL
            deadline=$((SECONDS + 10))
            while alive "${pid}" && (( SECONDS < deadline )); do sleep 0.1; done
            alive "${pid}" && die "pid ${pid} survived SIGKILL for 10 s"
        fi
        printf '===== %s stopped pid %s (%s, %s s) =====\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${pid}" \
            "${how}" "$(elapsed "${t0}")" >>"${LOG_FILE}"
        log "stopped (${how}, $(elapsed "${t0}") s)"
    else
        log "not running"
    fi
    rm -f "${PID_FILE}"
    if (( purge )); then
        log "purging ${DATA_DIR}"
        rm -rf -- "${DATA_DIR}"
    fi
}

cmd_status() {
    local pid
    if pid=$(running_pid); then
        local listening=no
        port_open "${KAFKA_PORT}" && listening=yes
        echo "running: pid ${pid}, ${BOOTSTRAP} (listening: ${listening}), home ${KAFKA_HOME_DIR}"
        return 0
    fi
    echo "stopped (${BOOTSTRAP}, home ${KAFKA_HOME_DIR})"
    return 3
}

cmd_wait() {
    running_pid >/dev/null || die "not running (start it with: scripts/kafka.sh start)"
    [[ -f "${CACHE_STAMP}" ]] || die "no jars in ${KAFKA_CACHE} (run: scripts/kafka.sh fetch)"
    wait_ready
}

cmd_logs() {
    [[ -f "${LOG_FILE}" ]] || die "no log yet at ${LOG_FILE}"
    if [[ "${1:-}" == "-f" ]]; then
        exec tail -n "${KAFKA_LOG_LINES}" -F "${LOG_FILE}"
    fi
    tail -n "${KAFKA_LOG_LINES}" "${LOG_FILE}"
}

cmd_topics() {
    [[ -f "${CACHE_STAMP}" ]] || die "no jars in ${KAFKA_CACHE} (run: scripts/kafka.sh fetch)"
    probe --topics
}

usage() {
    sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

main() {
    local cmd=${1:-}
    [[ $# -gt 0 ]] && shift
    case "${cmd}" in
        fetch) cmd_fetch ;;
        start) cmd_start ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status ;;
        wait) cmd_wait ;;
        logs) cmd_logs "$@" ;;
        topics) cmd_topics ;;
        -h | --help | help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
