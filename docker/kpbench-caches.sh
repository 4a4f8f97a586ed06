# kpbench images: make the weights caches usable when they are mounted read-only.
# Sourced (POSIX sh) by the entrypoint and, from /etc/profile.d, by every login shell: Ray's cluster
# launcher and KubeRay start Ray through `bash -l`, and Ray's workers inherit what this exports.
#
# Keras silently ignores a KERAS_HOME it cannot write (os.access(W_OK) fails: it falls back to
# /tmp/.keras and tries to download again). So when KERAS_HOME or TORCH_HOME is not writable, its
# files are mirrored as symlinks (no weights are copied) into a writable folder,
# $KPBENCH_CACHE_MIRROR (default /tmp/kpbench-cache), and the variable is pointed there.
kpbench_mirror_cache() {
    eval "kpbench_dir=\${$1:-}"
    if [ -z "$kpbench_dir" ] || [ ! -d "$kpbench_dir" ] || [ -w "$kpbench_dir" ]; then
        return 0
    fi
    kpbench_source=$(cd "$kpbench_dir" && pwd -P)
    kpbench_target="${KPBENCH_CACHE_MIRROR:-${TMPDIR:-/tmp}/kpbench-cache}/$1"
    if [ ! -d "$kpbench_target" ]; then
        echo "kpbench: $1=$kpbench_dir is read-only; using $kpbench_target (links to its files)" >&2
    fi
    if mkdir -p "$kpbench_target" && cp -Rsf "$kpbench_source/." "$kpbench_target/"; then
        export "$1=$kpbench_target"
    else
        echo "kpbench: could not mirror $1=$kpbench_dir into $kpbench_target" >&2
    fi
}
kpbench_mirror_cache KERAS_HOME
kpbench_mirror_cache TORCH_HOME
unset -f kpbench_mirror_cache
unset kpbench_dir kpbench_source kpbench_target
