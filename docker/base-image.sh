#!/usr/bin/env bash
# `make base-image`: a stand-in for the Dockerfiles' pinned base (python:X.Y.Z-slim-SUITE), built
# from a Debian mirror, for hosts that cannot pull from a registry (air-gapped clusters, CI); then
#   make build BASE_IMAGE=localhost/kpbench-base:python3.11-bookworm      (docs/images.md)
# Debian's own python3 (3.11.2 on bookworm; the official image has 3.11.15, and the locks' cp311
# wheels suit both) in a venv at /usr/local, so that /usr/local/bin/python, pip and
# /usr/local/lib/pythonX.Y/site-packages are where the official image has them.
#
#   docker/base-image.sh [TAG]       TAG: default localhost/kpbench-base:pythonX.Y-SUITE
# Needs root (debootstrap, chroot). MIRROR and SECURITY_MIRROR override the Debian mirrors, which
# are otherwise those of the host's apt sources (deb.debian.org when it has none).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=docker/image-lib.sh
. docker/image-lib.sh
kpbench_read_base
tag=${1:-$KPBENCH_STANDIN}
python=$KPBENCH_PYTHON
suite=$KPBENCH_SUITE

mirror=${MIRROR:-$(kpbench_apt_uri "$suite")}
mirror=${mirror:-http://deb.debian.org/debian}
security=${SECURITY_MIRROR:-$(kpbench_apt_uri "$suite-security")}
security=${security:-http://deb.debian.org/debian-security}

[ "$(id -u)" = 0 ] || kpbench_die "make base-image needs root (debootstrap and chroot)"
kpbench_select_engine
command -v debootstrap > /dev/null 2>&1 || kpbench_install_host_packages \
    || kpbench_die "debootstrap is not installed"

rootfs=$(mktemp -d "${TMPDIR:-/var/tmp}/kpbench-base.XXXXXX")
trap 'rm -rf --one-file-system "$rootfs" "$rootfs.log"' EXIT
started=$SECONDS

kpbench_log "base image $tag: Debian $suite from $mirror (security: $security), Python $python"
debootstrap --variant=minbase --include=ca-certificates,netbase,tzdata,python3,python3-venv \
    "$suite" "$rootfs" "$mirror" > "$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; kpbench_die "debootstrap failed (log above)"; }

# The image's apt (the Dockerfiles install a few packages) uses the same mirror, with updates
# and security fixes, which the chroot applies now, as the official image has them.
cat > "$rootfs/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
EOF
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
chroot "$rootfs" /bin/sh -c 'export DEBIAN_FRONTEND=noninteractive \
    && apt-get update -qq && apt-get upgrade -y -qq > /dev/null \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log'
chroot "$rootfs" /usr/bin/python3 -m venv /usr/local
found=$(chroot "$rootfs" /usr/local/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$found" = "$python" ] || kpbench_die "Debian $suite has Python $found, the Dockerfiles need $python"
: > "$rootfs/etc/resolv.conf"  # the engine provides its own at run time
find "$rootfs/usr/local" -name __pycache__ -prune -exec rm -rf {} +

tar -C "$rootfs" --numeric-owner -c . | "$ENGINE" import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$tag" > /dev/null
kpbench_log "base image $tag: built in $(kpbench_duration $((SECONDS - started))), Python $(
    "$ENGINE" run --rm "$tag" python -c 'import platform; print(platform.python_version())')"
