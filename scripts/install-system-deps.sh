#!/usr/bin/env bash
# Install the system packages minerlens' development and CI need (Debian/Ubuntu, apt).
#
#   redis-server           local Redis for integration tests   (scripts/redis.sh)
#   strace                 syscall capture fallback / kernel tests
#   build-essential (gcc)  native test programs
#   Java >= 17 + Maven     the local Kafka broker              (scripts/kafka.sh)
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

missing=()
for pkg in redis-server strace build-essential; do
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
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    log "all packages already installed"
fi

# Verify what the project's scripts rely on.
for cmd in redis-server strace gcc make java javac mvn; do
    command -v "${cmd}" >/dev/null 2>&1 || die "'${cmd}' still not on PATH after install"
done
major=$(java_major)
if (( major < MIN_JAVA )); then
    die "java on PATH is ${major}; Kafka 4.x brokers need Java ${MIN_JAVA}+ (set PATH/JAVA_HOME, e.g. update-alternatives --config java)"
fi
log "ok: java ${major}, $(mvn -v 2>/dev/null | head -n 1 | sed -E 's/\x1b\[[0-9;]*m//g'), $(redis-server --version | cut -d' ' -f1-3), $(strace -V | head -n 1), gcc $(gcc -dumpfullversion)"
