#!/usr/bin/env bash
# Container tooling shared by `make image`, `make test-image`, .ci/run and tests/test_container.py.
#
#   deploy/container.sh engine        a Docker engine answers, or start one (installing Debian's
#                                     docker.io when root and missing); exit 1 with the reason
#   deploy/container.sh stop-engine   stop the engine `engine` started (no-op otherwise)
#   deploy/container.sh base          the base images exist (bootstrapped from Debian's registry)
#   deploy/container.sh build [TAG]   engine + base + `docker build` of the production image
#
# Base images (no registry image is needed):
#   logo-detection-base:bookworm        Debian bookworm minbase + python3, python3-venv and
#                                       ca-certificates, bootstrapped with debootstrap: the base
#                                       of the published image.
#   logo-detection-build-base:bookworm  the same plus this machine's CA bundle and pip's TLS
#                                       settings, for the build stages only (pip may reach PyPI
#                                       through a TLS-intercepting proxy whose CA only this
#                                       machine trusts); never a layer of the published image.
# Settings (environment): IMAGE (default logo-detection:latest), BASE_IMAGE, BUILD_BASE_IMAGE,
# DEBIAN_MIRROR (default http://deb.debian.org/debian), DOCKERD_LOG (default build/dockerd.log).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${IMAGE:-logo-detection:latest}"
BASE_IMAGE="${BASE_IMAGE:-logo-detection-base:bookworm}"
BUILD_BASE_IMAGE="${BUILD_BASE_IMAGE:-logo-detection-build-base:bookworm}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DOCKERD_LOG="${DOCKERD_LOG:-$REPO_ROOT/build/dockerd.log}"
DOCKERD_PIDFILE="$REPO_ROOT/build/dockerd.pid"
HOST_CA_BUNDLE="${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

log() { echo "container.sh: $*" >&2; }

engine_answers() { docker info >/dev/null 2>&1; }

ensure_engine() {
    if engine_answers; then
        return 0
    fi
    if ! command -v dockerd >/dev/null 2>&1; then
        if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
            log "no Docker engine answers and none is installed (installing docker.io needs root and apt-get)"
            return 1
        fi
        log "installing Debian's docker.io and debootstrap"
        apt-get update -q >/dev/null &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap >/dev/null ||
            { log "apt-get could not install docker.io"; return 1; }
    fi
    if [ "$(id -u)" -ne 0 ]; then
        log "no Docker engine answers, and starting dockerd needs root"
        return 1
    fi
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    log "starting dockerd (log: $DOCKERD_LOG)"
    # setsid: the engine must not share the caller's process group (CI's job control, Ctrl-C).
    setsid dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
    echo $! >"$DOCKERD_PIDFILE"
    for _ in $(seq 60); do
        if engine_answers; then
            return 0
        fi
        if ! kill -0 "$(cat "$DOCKERD_PIDFILE")" 2>/dev/null; then
            break
        fi
        sleep 1
    done
    log "dockerd did not start; last lines of $DOCKERD_LOG:"
    tail -n 15 "$DOCKERD_LOG" >&2 || true
    stop_engine
    return 1
}

stop_engine() {
    [ -f "$DOCKERD_PIDFILE" ] || return 0
    local pid
    pid="$(cat "$DOCKERD_PIDFILE")"
    rm -f "$DOCKERD_PIDFILE"
    # Only the dockerd this script started (a stale file may name a reused PID).
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 0
    log "stopping the dockerd started for this run"
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 30); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

bootstrap_base() {
    command -v debootstrap >/dev/null 2>&1 || { log "debootstrap is missing (apt-get install debootstrap)"; return 1; }
    local rootfs
    rootfs="$(mktemp -d /tmp/logo-detection-rootfs.XXXXXX)"
    log "bootstrapping Debian bookworm from $DEBIAN_MIRROR into $rootfs (a few minutes)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$rootfs" "$DEBIAN_MIRROR" >"$rootfs.log" 2>&1 ||
        { tail -n 20 "$rootfs.log" >&2; rm -rf "$rootfs" "$rootfs.log"; return 1; }
    # What a container never needs: package downloads and lists, manuals, docs (licences stay).
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/* "$rootfs"/debootstrap
    find "$rootfs"/usr/share/doc -type f ! -name copyright -delete
    tar -C "$rootfs" --numeric-owner -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        --message "Debian bookworm minbase + python3, python3-venv, ca-certificates ($DEBIAN_MIRROR)" \
        - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs" "$rootfs.log"
}

build_build_base() {
    local context
    context="$(mktemp -d /tmp/logo-detection-build-base.XXXXXX)"
    cp "$HOST_CA_BUNDLE" "$context/build-ca-bundle.crt"
    cat >"$context/Dockerfile" <<EOF
FROM $BASE_IMAGE
COPY build-ca-bundle.crt /etc/ssl/build-ca-bundle.crt
ENV PIP_CERT=/etc/ssl/build-ca-bundle.crt \\
    SSL_CERT_FILE=/etc/ssl/build-ca-bundle.crt \\
    PIP_DEFAULT_TIMEOUT=180 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    PIP_NO_CACHE_DIR=1
EOF
    docker build --quiet --network host -t "$BUILD_BASE_IMAGE" "$context" >/dev/null
    rm -rf "$context"
}

ensure_base() {
    image_exists "$BASE_IMAGE" || bootstrap_base
    # Rebuilt when this machine's CA bundle changes; otherwise a cache hit.
    build_build_base
}

build_image() {
    local tag="${1:-$IMAGE}"
    ensure_engine
    ensure_base
    DOCKER_BUILDKIT=0 docker build --network host \
        --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg BUILD_BASE_IMAGE="$BUILD_BASE_IMAGE" \
        -t "$tag" "$REPO_ROOT"
}

case "${1:-}" in
    engine) ensure_engine ;;
    stop-engine) stop_engine ;;
    base) ensure_engine && ensure_base ;;
    build) build_image "${2:-}" ;;
    *)
        sed -n '2,8p' "$0" >&2
        exit 2
        ;;
esac
