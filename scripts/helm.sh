#!/usr/bin/env bash
# The Helm binary the deployment tests and docs use (deploy/helm/minerlens), built from source once.
#
#   scripts/helm.sh path     print the path of the helm binary; build it first when it is missing
#   scripts/helm.sh <args>   run that helm with <args> (e.g. scripts/helm.sh lint deploy/helm/minerlens)
#
# The binary is `go install helm.sh/helm/v4/cmd/helm@${HELM_VERSION}` in $(go env GOPATH)/bin (the Go
# module proxy serves the sources; the module cache keeps them, so only the first build downloads). An
# existing binary there is used as it is, whatever HELM_VERSION says.
# When another `go install helm.sh/...` is already running (a parallel bootstrap), this waits for it
# instead of building a second time.
#
# Environment (defaults):
#   HELM_VERSION=v4.3.2               the Helm release to build
#   HELM_BIN=                         use this binary instead (no build)
#   HELM_WAIT_S=1800                  longest wait for a build started elsewhere
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v4.3.2}
HELM_WAIT_S=${HELM_WAIT_S:-1800}
PACKAGE="helm.sh/helm/v4/cmd/helm"
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
    PATH="/usr/local/go/bin:${PATH}"  # the Go toolchain's default place, when a login shell did not add it
fi

log() { printf 'helm.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

other_build_running() {
    pgrep -f "go install ${PACKAGE%%/*}" >/dev/null 2>&1
}

helm_path() {
    if [[ -n "${HELM_BIN:-}" ]]; then
        [[ -x "${HELM_BIN}" ]] || die "HELM_BIN=${HELM_BIN} is not an executable file"
        printf '%s\n' "${HELM_BIN}"
        return
    fi
    local gobin binary waited=0 have_go=0
    if command -v go >/dev/null 2>&1; then
        have_go=1
        gobin=$(go env GOBIN)
        [[ -n "${gobin}" ]] || gobin="$(go env GOPATH)/bin"
    else
        gobin=${GOBIN:-${GOPATH:-${HOME}/go}/bin}  # where go would have put it
    fi
    binary="${gobin}/helm"

    if [[ ! -x "${binary}" ]] && other_build_running; then
        log "a build of helm is already running; waiting for it (up to ${HELM_WAIT_S}s)"
        while other_build_running; do
            ((waited < HELM_WAIT_S)) || die "the other helm build is still running after ${HELM_WAIT_S}s"
            sleep 5
            waited=$((waited + 5))
        done
    fi
    if [[ ! -x "${binary}" ]]; then
        ((have_go)) || die "${binary} does not exist and go is not installed: it is needed to build helm ${HELM_VERSION}"
        log "building helm ${HELM_VERSION} into ${gobin} (go install ${PACKAGE}@${HELM_VERSION}); the first build" \
            "downloads the sources through the Go module proxy and takes a few minutes"
        GOFLAGS=-mod=mod go install "${PACKAGE}@${HELM_VERSION}" >&2 || die "go install ${PACKAGE}@${HELM_VERSION} failed"
        [[ -x "${binary}" ]] || die "go install succeeded but ${binary} does not exist"
        log "built ${binary}"
    fi
    printf '%s\n' "${binary}"
}

case "${1:-}" in
    path) helm_path ;;
    "" | -h | --help | help) usage ;;
    *)
        binary=$(helm_path)
        exec "${binary}" "$@"
        ;;
esac
