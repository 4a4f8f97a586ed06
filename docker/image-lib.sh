# shellcheck shell=bash
# Sourced by docker/base-image.sh and docker/test-image.sh (docs/images.md).
#
# kpbench_select_engine sets ENGINE to a container engine that works:
#   DOCKER set (make ... DOCKER=podman): that engine, which must answer `$DOCKER info`;
#   otherwise docker if its engine answers `docker info` (a docker client with no engine behind it
#   does not), else podman, which is installed with apt when it is missing and we are root.
# With podman, CONTAINERS_CONF defaults to docker/containers.conf (runc, ulimits).

KPBENCH_DOCKER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# What a clean Debian host gets (about 40 s): podman (buildah comes with its recommends),
# debootstrap for the stand-in base, runc for containers.conf.
KPBENCH_HOST_PACKAGES=(podman buildah debootstrap runc)

kpbench_log() {
    echo "kpbench: $*" >&2
}

kpbench_die() {
    kpbench_log "error: $*"
    exit 2
}

kpbench_engine_answers() {
    command -v "$1" > /dev/null 2>&1 && "$1" info > /dev/null 2>&1
}

# Install the missing KPBENCH_HOST_PACKAGES with apt; fails (saying what to install) unless root.
kpbench_install_host_packages() {
    local missing=() package
    for package in "${KPBENCH_HOST_PACKAGES[@]}"; do
        command -v "$package" > /dev/null 2>&1 || missing+=("$package")
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null 2>&1; then
        kpbench_log "missing ${missing[*]}: install them (Debian: apt-get install ${missing[*]})"
        return 1
    fi
    kpbench_log "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" > /dev/null
}

kpbench_select_engine() {
    if [ -n "${DOCKER:-}" ]; then
        ENGINE=$DOCKER
    elif kpbench_engine_answers docker; then
        ENGINE=docker
    else
        ENGINE=podman
        command -v podman > /dev/null 2>&1 || kpbench_install_host_packages \
            || kpbench_die "no container engine: neither \`docker info\` nor \`podman info\` works"
    fi
    if [ "$(basename "$ENGINE")" = podman ] && [ -z "${CONTAINERS_CONF:-}" ]; then
        command -v runc > /dev/null 2>&1 || kpbench_install_host_packages \
            || kpbench_die "docker/containers.conf runs containers with runc, which is missing"
        export CONTAINERS_CONF="$KPBENCH_DOCKER_DIR/containers.conf"
    fi
    "$ENGINE" info > /dev/null 2>&1 || kpbench_die "\`$ENGINE info\` fails: is its engine running?"
}

kpbench_image_exists() {
    "$ENGINE" image inspect "$1" > /dev/null 2>&1
}

# The Dockerfiles' pinned base, and the fields of its name: KPBENCH_BASE (python:3.11.15-slim-
# bookworm@sha256:...), KPBENCH_PYTHON (3.11), KPBENCH_SUITE (bookworm), KPBENCH_STANDIN (the tag
# `make base-image` gives its stand-in: localhost/kpbench-base:python3.11-bookworm).
# shellcheck disable=SC2034  # the KPBENCH_* variables are this function's output
kpbench_read_base() {
    KPBENCH_BASE=$(sed -n 's/^ARG BASE_IMAGE=//p' "$KPBENCH_DOCKER_DIR/Dockerfile")
    read -r KPBENCH_PYTHON KPBENCH_SUITE < <(echo "$KPBENCH_BASE" \
        | sed -nE 's/^python:([0-9]+\.[0-9]+)[.0-9]*-slim-([a-z]+)@.*/\1 \2/p')
    [ -n "${KPBENCH_SUITE:-}" ] \
        || kpbench_die "docker/Dockerfile: no \`ARG BASE_IMAGE=python:X.Y.Z-slim-SUITE@...\`"
    KPBENCH_STANDIN="localhost/kpbench-base:python$KPBENCH_PYTHON-$KPBENCH_SUITE"
}

# The first URI apt's sources give for SUITE (empty if none), from one-line (.list) and deb822
# (.sources) files: FILES, default the host's.
kpbench_apt_uri() {
    local suite=$1 files=() file
    shift
    [ "$#" -gt 0 ] || set -- /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources
    for file in "$@"; do
        [ -f "$file" ] && files+=("$file")
    done
    [ "${#files[@]}" -gt 0 ] || return 0
    awk -v want="$suite" '
        function take(uris, suites,   u, s, nu, ns, i, j) {
            nu = split(uris, u, " "); ns = split(suites, s, " ")
            for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
                if (s[j] == want) { print u[i]; found = 1; exit }
        }
        function flush() {
            if (deb822 && debs && enabled) take(uris, suites)
            uris = ""; suites = ""; debs = 0; enabled = 1
        }
        FNR == 1 { flush(); deb822 = (FILENAME ~ /\.sources$/) }
        !deb822 && $1 == "deb" {
            i = 2
            if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
            if ($(i + 1) == want) { print $i; found = 1; exit }
        }
        deb822 && /^[ \t]*$/ { flush(); next }
        deb822 {
            key = tolower($1); value = $0; sub(/^[^:]*:[ \t]*/, "", value)
            if (key == "types:") debs = (" " value " " ~ / deb /)
            if (key == "uris:") uris = value
            if (key == "suites:") suites = value
            if (key == "enabled:") enabled = (tolower(value) != "no")
        }
        END { if (!found) flush() }
    ' "${files[@]}"
}

kpbench_duration() {
    printf '%dm%02ds' $(($1 / 60)) $(($1 % 60))
}
