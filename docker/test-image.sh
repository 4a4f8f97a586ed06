#!/usr/bin/env bash
# `make test-image` (cpu) and `make test-image-gpu` (gpu): build the image and show that the benchmark
# reproduces in it (docs/images.md). Each step prints its time; a summary ends the run.
#   engine   docker, or podman (installed with apt on a clean Debian host, as root)
#   base     the pinned base if it is here or can be pulled, else `make base-image`'s stand-in
#   build    `make build-cpu` / `make build` (layer cache: a rerun rebuilds only what changed)
#   venv     the config (configs/smoke.yaml) in .venv
#   image    the same config in the image (`make run IMAGE=...`; as root, as the image's user)
#   compare  `kpbench compare --require-identical`: every prediction equal
#   locks    the image's installed packages are exactly its docker/*.lock
#   clean    dangling images removed, so that reruns do not fill the disk
# Called by make with DOCKER (empty: detect), IMAGE, BASE_IMAGE, BUILD_FLAGS, BIN, CONFIG, MAKE.
set -euo pipefail
variant=${1:-}
cd "$(dirname "$0")/.."
# shellcheck source=docker/image-lib.sh
. docker/image-lib.sh

# Per variant: the make target, "lock:site" pairs (site: where pip installed it, empty for the
# image's Python) and the free disk a build from scratch needs (about twice the largest layer).
case $variant in
    cpu) target=build-cpu; checks=(requirements.lock:); need_gb=16 ;;
    gpu) target=build; checks=(requirements-gpu.lock: requirements-gpu-tf-cuda12.lock:/opt/tf-cuda12)
         need_gb=26 ;;
    *) kpbench_die "usage: docker/test-image.sh cpu|gpu" ;;
esac
image=${IMAGE:-kpbench:$variant}
bin=${BIN:-.venv/bin}
config=${CONFIG:-configs/smoke.yaml}
make=${MAKE:-make}
out=runs/test-image
[ -x "$bin/kpbench" ] || kpbench_die "$bin/kpbench is missing: run \`make setup\` first"

steps=(engine base build venv image compare locks clean)
summary=()
current=
started=$SECONDS
report_failure() {
    kpbench_log "test-image $variant: failed in step \"$current\" after $(kpbench_duration $((SECONDS - started)))"
}
trap 'if [ "$?" != 0 ]; then report_failure; fi' EXIT

step() {
    local name=$1 begun=$SECONDS
    current=$name
    echo "== test-image $variant [$((${#summary[@]} + 1))/${#steps[@]}] $name ($(date +%H:%M:%S))"
    "step_$name"
    summary+=("$(printf '  %-8s %s' "$name" "$(kpbench_duration $((SECONDS - begun)))")")
    echo "-- $name: $(kpbench_duration $((SECONDS - begun)))"
}

size_gb() {
    "$ENGINE" image inspect --format '{{.Size}}' "$1" | awk '{printf "%.1f GB", $1 / 1e9}'
}

step_engine() {
    kpbench_select_engine
    echo "engine: $("$ENGINE" --version)${CONTAINERS_CONF:+, CONTAINERS_CONF=$CONTAINERS_CONF}"
}

step_base() {
    kpbench_read_base
    # Fully qualified: podman does not resolve short names without a registries.conf search list.
    local pinned="docker.io/library/$KPBENCH_BASE"
    if [ -n "${BASE_IMAGE:-}" ]; then
        base=$BASE_IMAGE
    elif kpbench_image_exists "$pinned" || timeout 600 "$ENGINE" pull -q "$pinned" > /dev/null 2>&1; then
        base=$pinned
    else
        kpbench_log "cannot pull $pinned: building on the stand-in $KPBENCH_STANDIN (make base-image)"
        kpbench_image_exists "$KPBENCH_STANDIN" || "$make" --no-print-directory base-image DOCKER="$ENGINE"
        base=$KPBENCH_STANDIN
    fi
    echo "base: $base ($(size_gb "$base"))"
}

step_build() {
    local root free_gb flags=()
    root=$("$ENGINE" info --format '{{if .Store}}{{.Store.GraphRoot}}{{else}}{{.DockerRootDir}}{{end}}' \
        2> /dev/null || true)
    free_gb=$(df -P -BG "${root:-/}" 2> /dev/null | awk 'NR == 2 {print int($4)}')
    if [ -n "$free_gb" ] && [ "$free_gb" -lt "$need_gb" ]; then
        if ! kpbench_image_exists "$image"; then
            "$ENGINE" images >&2 || true
            kpbench_die "${root:-/} has ${free_gb} GB free; building $image needs about $need_gb GB" \
                "(remove images you do not need: $ENGINE rmi IMAGE)"
        fi
        kpbench_log "only ${free_gb} GB free: enough only if the layer cache of $image still holds"
    fi
    # The host's pip configuration as a build secret (see the Dockerfiles) and, for podman, the
    # host's CA certificates, which that configuration may name.
    if [ -f /etc/pip.conf ]; then
        flags+=(--secret "id=pip.conf,src=/etc/pip.conf")
    fi
    if [ "$(basename "$ENGINE")" = podman ] && [ -d /etc/ssl/certs ]; then
        flags+=(-v /etc/ssl/certs:/etc/ssl/certs:ro)
    fi
    "$make" --no-print-directory "$target" DOCKER="$ENGINE" IMAGE="$image" BASE_IMAGE="$base" \
        BUILD_FLAGS="${flags[*]} ${BUILD_FLAGS:-}"
    echo "image: $image ($(size_gb "$image"))"
}

step_venv() {
    rm -rf "$out/venv"
    "$bin/kpbench" run --config "$config" --out "$out/venv"
}

step_image() {
    rm -rf "${out:?}/image-$variant"
    # GPUS empty: on the CPU, so that the predictions can equal .venv's.
    "$make" --no-print-directory run IMAGE="$image" DOCKER="$ENGINE" GPUS= CONFIG="$config" \
        OUT="$out/image-$variant"
}

step_compare() {
    "$bin/kpbench" compare "$out/venv" "$out/image-$variant" --require-identical
}

step_locks() {
    local check lock site
    for check in "${checks[@]}"; do
        lock=${check%%:*}
        site=${check#*:}
        "$ENGINE" run --rm "$image" pip list --format=freeze ${site:+--path "$site"} \
            | "$bin/python" docker/locks.py installed "$lock"
    done
}

step_clean() {
    # Images that containers still use cannot go: a killed build leaves its working containers
    # (`podman ps -a --external` lists them). Those images are kept and counted, the rest
    # removed; rounds repeat while they remove something (a parent goes after its children).
    local left removed id
    while :; do
        removed=0
        for id in $("$ENGINE" images -q -f dangling=true); do
            if "$ENGINE" rmi "$id" > /dev/null 2>&1; then removed=$((removed + 1)); fi
        done
        [ "$removed" -gt 0 ] || break
    done
    left=$("$ENGINE" images -q -f dangling=true | wc -l)
    if [ "$left" -gt 0 ]; then
        kpbench_log "kept $left dangling image(s) that containers use (interrupted builds?" \
            "$ENGINE ps -a --external lists them, buildah rm --all removes podman's)"
    fi
    "$ENGINE" images
}

for name in "${steps[@]}"; do
    step "$name"
done
echo "== test-image $variant passed in $(kpbench_duration $((SECONDS - started))): $image $(size_gb "$image")," \
    "base $base"
printf '%s\n' "${summary[@]}"
