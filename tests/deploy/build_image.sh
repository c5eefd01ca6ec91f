#!/usr/bin/env bash
# Build one minerlens image here, without any container registry:
#   1. a python:3.11-slim-bookworm stand-in base image, made once with debootstrap from this machine's
#      Debian archive (python3, venv, pip, passwd, CA certificates) and kept in buildah's storage;
#   2. buildah (chroot isolation, vfs storage: no daemon, no overlay mounts) on the Dockerfile with the
#      service's build arguments (scripts/images.sh --args) and --build-arg PYTHON_IMAGE=<that base>.
# The Dockerfile is unchanged: the real build uses the pinned python image from the registry.
#
#   bash tests/deploy/build_image.sh responder [TAG]        (root; apt-get install buildah debootstrap)
set -euo pipefail
SVC=${1:?usage: build_image.sh SERVICE [TAG]}
TAG=${2:-localhost/minerlens/${SVC}:ci}
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
BASE=${MINERLENS_BASE_IMAGE:-localhost/minerlens-base:bookworm-py3.11}
B=(buildah --storage-driver vfs)

log() { printf 'build_image: %s\n' "$*" >&2; }

# The Debian archive this machine's apt uses (deb822 sources first, then the one-line format).
mirror() {
    local uri=""
    if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
        uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    fi
    if [[ -z "${uri}" && -r /etc/apt/sources.list ]]; then
        uri=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list)
    fi
    [[ -n "${uri}" ]] || { log "no Debian archive found in the apt sources"; exit 1; }
    printf '%s\n' "${uri}"
}

if ! "${B[@]}" inspect --type image "${BASE}" >/dev/null 2>&1; then
    work=$(mktemp -d)
    trap 'rm -rf "${work}"' EXIT
    log "making ${BASE} with debootstrap (once)"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates,passwd \
        bookworm "${work}/rootfs" "$(mirror)" >"${work}/debootstrap.log" 2>&1 \
        || { tail -n 20 "${work}/debootstrap.log" >&2; exit 1; }
    ln -sf /usr/bin/python3 "${work}/rootfs/usr/local/bin/python"
    # this machine's CA bundle, so pip inside the build trusts what pip outside it trusts
    cp /etc/ssl/certs/ca-certificates.crt "${work}/rootfs/etc/ssl/certs/ca-certificates.crt"
    rm -rf "${work}/rootfs/var/cache/apt/archives/"*.deb "${work}/rootfs/var/lib/apt/lists/"*
    ctr=$("${B[@]}" from scratch)
    mnt=$("${B[@]}" mount "${ctr}")
    cp -a "${work}/rootfs/." "${mnt}/"
    "${B[@]}" umount "${ctr}" >/dev/null
    "${B[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env PIP_CERT=/etc/ssl/certs/ca-certificates.crt --env PIP_DEFAULT_TIMEOUT=180 --cmd python3 "${ctr}"
    "${B[@]}" commit --rm -q "${ctr}" "${BASE}" >/dev/null
fi

log "building ${TAG} from the Dockerfile (SERVICE=${SVC})"
cd "${ROOT}"
args=()
while IFS= read -r a; do args+=(--build-arg "${a}"); done < <(bash scripts/images.sh --args "${SVC}")
"${B[@]}" bud --format docker --isolation chroot --network host --layers=false \
    --build-arg "PYTHON_IMAGE=${BASE}" "${args[@]}" -f Dockerfile -t "${TAG}" . >&2
printf '%s\n' "${TAG}"
