#!/usr/bin/env bash
# Prepare a container engine for ragqa's image and compose stack, and build the image.
#   scripts/containers.sh engine   podman (Debian), podman-compose (PyPI), the base image
#   scripts/containers.sh build    build ragqa:latest (podman build --format docker)
#   scripts/containers.sh all      both (the default)
#   scripts/containers.sh size     the image's size above its base, the largest parts of /opt/venv
# Idempotent: a second run only checks. podman reads deploy/containers.conf (CONTAINERS_CONF), not /etc.
# Where no container registry is reachable, python:3.11-slim-bookworm is stood in for by Debian
# bookworm's own Python 3.11 (debootstrap + podman import), tagged with the official name.
# This machine's pip settings (CA bundle, find-links with the CPU torch wheel, local package
# indexes) reach the build as read-only build volumes, only where they exist; none is baked in.
# Wheels the host built (llama-cpp-python) are not reused: they are built for the host's CPU, and
# the image's own is built to run on any x86-64 with AVX2 (Dockerfile).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
export CONTAINERS_CONF="${CONTAINERS_CONF:-$REPO/deploy/containers.conf}"
BASE=docker.io/library/python:3.11-slim-bookworm
IMAGE="${RAGQA_IMAGE:-ragqa:latest}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
log() { printf '[containers] %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_engine() {
    local need=()
    command -v podman >/dev/null || need+=(podman)
    command -v runc >/dev/null || need+=(runc)
    command -v debootstrap >/dev/null || need+=(debootstrap)
    # name resolution between the stack's containers (the api reaches http://vllm:8000)
    [ -x /usr/lib/podman/aardvark-dns ] || need+=(aardvark-dns netavark)
    command -v iptables >/dev/null || need+=(iptables)  # netavark sets up the network with it
    if [ ${#need[@]} -gt 0 ]; then
        log "installing ${need[*]} from Debian"
        as_root apt-get update -q
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q "${need[@]}" uidmap slirp4netns fuse-overlayfs
    fi
    if ! "$PYTHON" -c "import podman_compose" 2>/dev/null; then
        log "installing podman-compose from PyPI into $("$PYTHON" -c 'import sys; print(sys.prefix)')"
        "$PYTHON" -m pip install -q "podman-compose==1.6.0"
    fi
    podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}}' >&2
}

debian_mirror() {
    # The mirror that apt's sources already name (deb822 or one-line format).
    local uri
    uri=$(grep -hoP '^URIs:\s*\K\S+/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 || true)
    [ -n "$uri" ] || uri=$(grep -hoP '^deb\s+(\[[^]]*\]\s+)?\K\S+/debian/?(?=\s+bookworm\s)' /etc/apt/sources.list 2>/dev/null | head -1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

base_image() {
    if podman image exists "$BASE"; then return; fi
    log "pulling $BASE"
    if timeout 30 podman pull -q "$BASE" >/dev/null 2>&1; then return; fi
    log "no registry reachable: building a stand-in for $BASE from Debian bookworm (about a minute)"
    local root
    root=$(mktemp -d /var/tmp/ragqa-base.XXXXXX)
    local try
    for try in 1 2; do
        if as_root debootstrap --variant=minbase \
            --include=python3,python3-venv,python3-dev,python-is-python3,ca-certificates \
            bookworm "$root" "$(debian_mirror)" >/dev/null; then break; fi
        [ "$try" = 1 ] || return 1
        log "debootstrap failed; trying once more"
        as_root rm -rf "$root" && mkdir -p "$root"
    done
    as_root rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/*
    as_root tar -C "$root" -c . | podman import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        - "$BASE" >/dev/null
    as_root rm -rf "$root"
    log "stand-in $BASE: $(podman image inspect --format '{{.Size}}' "$BASE") bytes"
}

pip_setting() { "$PYTHON" -m pip config list 2>/dev/null | grep -oP "^(global|:env:)\.$1='\K[^']*" | head -1 || true; }

build_image() {
    local args=(--format docker --pull=never -t "$IMAGE")
    local conf_dir
    conf_dir=$(mktemp -d)
    printf '[global]\n' >"$conf_dir/pip.conf"
    local cert find_links extra dir
    cert=$(pip_setting cert)
    cert=${cert:-${PIP_CERT:-}}
    if [ -n "$cert" ] && [ -f "$cert" ]; then
        args+=(-v "$cert:/run/ragqa-build/ca.crt:ro")
        printf 'cert = /run/ragqa-build/ca.crt\n' >>"$conf_dir/pip.conf"
    fi
    find_links=$(pip_setting find-links)
    find_links=${find_links:-${PIP_FIND_LINKS:-}}
    if [ -n "$find_links" ] && [ -d "$find_links" ]; then
        args+=(-v "$find_links:$find_links:ro")
        printf 'find-links = %s\n' "$find_links" >>"$conf_dir/pip.conf"
    fi
    local kept=()
    for extra in $(pip_setting extra-index-url); do
        dir=${extra#file://}
        # A local (file://) index is mounted at the same path, with its parent: its links are
        # relative (../../files/...).
        if [ "$dir" != "$extra" ] && [ -d "$dir" ]; then
            dir=$(dirname "${dir%/}")
            args+=(-v "$dir:$dir:ro")
            kept+=("$extra")
        fi
    done
    [ ${#kept[@]} -eq 0 ] || printf 'extra-index-url = %s\n' "${kept[*]}" >>"$conf_dir/pip.conf"
    args+=(-v "$conf_dir/pip.conf:/etc/pip.conf:ro")
    log "podman build ${args[*]} ."
    local started=$SECONDS
    # A second try reuses the layers that were built: a registry hiccup costs only the failed step.
    local try
    for try in 1 2; do
        if nice -n 5 podman build "${args[@]}" "$REPO"; then break; fi
        if [ "$try" = 2 ]; then rm -rf "$conf_dir"; return 1; fi
        log "build failed; trying once more"
    done
    rm -rf "$conf_dir"
    log "built $IMAGE in $((SECONDS - started)) s: $(podman image inspect --format '{{.Size}}' "$IMAGE") bytes"
}

report_size() {
    # The image above its base layer (the stand-in base differs from the official one), and the
    # five largest parts of /opt/venv.
    local image base
    image=$(podman image inspect --format '{{.Size}}' "$IMAGE")
    base=$(podman image inspect --format '{{.Size}}' "$BASE")
    echo "$IMAGE: $((image / 1000000)) MB, $(((image - base) / 1000000)) MB above $BASE ($((base / 1000000)) MB)"
    podman run --rm --entrypoint sh "$IMAGE" -c \
        'du -sm /opt/venv; du -sm /opt/venv/lib/python3.11/site-packages/* | sort -rn | head -5'
}

case "${1:-all}" in
    engine) install_engine; base_image ;;
    build) build_image ;;
    all) install_engine; base_image; build_image ;;
    size) report_size ;;
    *) echo "usage: $0 [engine|build|all|size]" >&2; exit 64 ;;
esac
