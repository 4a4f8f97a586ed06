#!/bin/sh
# kpbench images' entrypoint: fix up read-only weights caches, then run kpbench, or any command.
#   docker run IMAGE run --config ...   -> kpbench run --config ...
#   docker run IMAGE                    -> kpbench --help
#   docker run IMAGE bash               -> bash (what the Ray cluster launcher starts)
#   docker run IMAGE ray start ...      -> ray start ...
set -eu
. "${KPBENCH_CACHES_SH:-/etc/profile.d/kpbench-caches.sh}"
if [ "$#" -eq 0 ]; then
    set -- --help
fi
case "$1" in
    -*) set -- kpbench "$@" ;;
    *) command -v "$1" > /dev/null 2>&1 || set -- kpbench "$@" ;;
esac
exec "$@"
