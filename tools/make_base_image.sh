#!/bin/bash
# Make a Debian base image locally, for `make image BASE_IMAGE=...` where no container registry
# can be reached (Docker Hub's debian:bookworm-slim is the ordinary base): debootstrap a minimal
# Debian (variant minbase, what the slim images hold) from the package mirror apt already uses,
# trim it like the slim images do (no docs, man pages or locales; apt keeps no lists or .debs),
# and import the tree as an image with podman (or docker).
#
# Usage (as root: debootstrap needs it):
#   tools/make_base_image.sh [IMAGE]          # default IMAGE: localhost/debian-bookworm-base:minbase
#   make image BASE_IMAGE=localhost/debian-bookworm-base:minbase
# Environment:
#   SUITE     Debian release (default bookworm: its python3 is Python 3.11, the Makefile's PYTHON)
#   MIRROR    package mirror (default: the first Debian URI in /etc/apt/sources.list*, else deb.debian.org)
#   ENGINE    podman or docker (default: docker when its daemon answers, else podman)
#   PODMAN_STORAGE_FLAGS  podman's global storage options (default --storage-driver vfs); must be the
#             same as `make image` uses (the Makefile's default is the same), or the image is not found
#   WORKDIR   where the root file system is made (default: a temporary directory, removed after)
# Needs: debootstrap (Debian package), podman or docker. Takes a few minutes (downloads ~40 MB).
set -euo pipefail

IMAGE=${1:-localhost/debian-bookworm-base:minbase}
SUITE=${SUITE:-bookworm}
PODMAN_STORAGE_FLAGS=${PODMAN_STORAGE_FLAGS---storage-driver vfs}

if [ -z "${MIRROR:-}" ]; then
    # deb822 (URIs: ...) or one-line (deb URI suite ...) sources; the first Debian archive wins.
    MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | sed -nE 's#^(URIs:|deb( \[[^]]*\])?)[[:space:]]+(https?://[^[:space:]]*/debian)/?([[:space:]].*)?$#\3#p' \
        | head -n1 || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

if [ -z "${ENGINE:-}" ]; then
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker
    elif command -v podman >/dev/null; then ENGINE=podman
    else echo "make_base_image: neither a docker daemon nor podman (apt-get install podman)" >&2; exit 2
    fi
fi
if [ "$ENGINE" = podman ]; then
    # shellcheck disable=SC2206  # the flags are words on purpose
    ENGINE_CMD=(podman $PODMAN_STORAGE_FLAGS)
else
    ENGINE_CMD=(docker)
fi
command -v debootstrap >/dev/null || { echo "make_base_image: needs debootstrap (apt-get install debootstrap)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "make_base_image: debootstrap needs root" >&2; exit 2; }

if [ -n "${WORKDIR:-}" ]; then
    mkdir -p "$WORKDIR"
    work=$WORKDIR
else
    work=$(mktemp -d "${TMPDIR:-/var/tmp}/train_fou-base.XXXXXX")
    trap 'rm -rf "$work"' EXIT
fi
rootfs=$work/rootfs
rm -rf "$rootfs"

echo "make_base_image: debootstrap --variant=minbase $SUITE from $MIRROR into $rootfs"
debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR"

# As the debian:*-slim images: dpkg leaves docs, man pages and locales out of every later install.
cat > "$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
cat > "$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
cat > "$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
EOF
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/lib/apt/lists/* \
       "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log
: > "$rootfs/etc/hostname"
: > "$rootfs/etc/resolv.conf"   # the engine provides it at build and run time

echo "make_base_image: importing as $IMAGE with ${ENGINE_CMD[*]}"
tar --numeric-owner --xattrs -C "$rootfs" -c . \
    | "${ENGINE_CMD[@]}" import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$IMAGE"
"${ENGINE_CMD[@]}" image ls "$IMAGE"
