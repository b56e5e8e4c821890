#!/usr/bin/env bash
# Build the Debian base image the training and serving Dockerfiles use as BASE_IMAGE, from
# Debian packages alone (no Docker Hub): debootstrap a minimal bookworm root filesystem with
# Python 3, bring it up to date from bookworm-updates and bookworm-security, trim it, and
# `docker import` it. Nothing from the build host (proxy CA, resolv.conf, hostname, mirror
# override) stays in the image; it points apt at the public deb.debian.org.
#
#   scripts/base-image.sh [TAG]        default TAG earthseg-base:bookworm
#   env: FORCE=1 rebuilds an existing TAG; DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR pick the
#        mirrors used while building (defaults http://deb.debian.org/debian{,-security}).
set -euo pipefail

tag=${1:-earthseg-base:bookworm}
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
packages=python3,python3-venv,python3-pip,ca-certificates
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { echo "base-image: $*"; }
die() {
    echo "base-image: error: $*" >&2
    exit 1
}

"$here/ensure-docker.sh"

if [ -z "${FORCE:-}" ] && docker image inspect "$tag" >/dev/null 2>&1; then
    say "$tag already exists (FORCE=1 $0 $tag rebuilds it)"
    exit 0
fi

previous=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
[ "$(id -u)" -eq 0 ] || die "debootstrap needs root: run 'sudo $0 $tag'"
if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap from Debian"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

# On disk rather than a possibly small tmpfs /tmp: the root filesystem is a few hundred MB.
work=$(mktemp -d "${TMPDIR:-/var/tmp}/earthseg-base.XXXXXX")
trap 'rm -rf --one-file-system "$work"' EXIT
rootfs=$work/rootfs

start=$SECONDS
say "debootstrap --variant=minbase $suite from $mirror (log: $work/debootstrap.log while it runs)"
if ! debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" \
    >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    [ -f "$rootfs/debootstrap/debootstrap.log" ] && tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
    die "debootstrap failed (mirror $mirror; set DEBIAN_MIRROR to use another)"
fi
bootstrap_s=$((SECONDS - start))

write_sources() { # $1 main mirror, $2 security mirror
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $1
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $2
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

# Like Debian's slim images: no manuals, docs (copyrights kept) or translations, now or in
# packages later Dockerfiles install.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
# apt in the image: drop downloaded .debs and skip recommends, as in Docker's own images.
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'APT::Install-Recommends "false";' >"$rootfs/etc/apt/apt.conf.d/docker-no-recommends"

start=$SECONDS
say "applying $suite-updates and $suite-security"
write_sources "$mirror" "$security_mirror"
# The chroot resolves the mirrors with the host's resolver (debootstrap copied resolv.conf);
# policy-rc.d keeps package scripts from starting services.
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod +x "$rootfs/usr/sbin/policy-rc.d"
if ! chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -c 'apt-get update -qq && apt-get upgrade -y -qq && apt-get clean' >"$work/upgrade.log" 2>&1; then
    tail -n 30 "$work/upgrade.log" >&2
    die "apt-get upgrade in the new root filesystem failed (set DEBIAN_MIRROR/DEBIAN_SECURITY_MIRROR?)"
fi
rm -f "$rootfs/usr/sbin/policy-rc.d"
upgrade_s=$((SECONDS - start))

# Trim, and remove everything that describes the build host rather than the image.
write_sources http://deb.debian.org/debian http://deb.debian.org/debian-security
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda,locale}/* \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
    "$rootfs"/var/lib/dpkg/*-old "$rootfs"/tmp/* "$rootfs"/var/tmp/* "$rootfs"/root/.cache
find "$rootfs/var/log" -type f -delete
find "$rootfs" -xdev -name __pycache__ -type d -prune -exec rm -rf {} +
: >"$rootfs/etc/resolv.conf"
: >"$rootfs/etc/hostname"
rm -f "$rootfs/etc/machine-id" "$rootfs/var/lib/dbus/machine-id"

start=$SECONDS
debian_version=$(cat "$rootfs/etc/debian_version")
say "docker import as $tag (Debian $debian_version)"
tar --numeric-owner -C "$rootfs" -c . | docker import \
    --message "debootstrap --variant=minbase $suite + $packages" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PYTHONUNBUFFERED=1' \
    --change 'ENV PYTHONDONTWRITEBYTECODE=1' \
    --change "LABEL org.opencontainers.image.title=earthseg-base" \
    --change "LABEL org.opencontainers.image.description=\"Debian $suite minbase + $packages\"" \
    --change "LABEL org.opencontainers.image.version=$debian_version" \
    --change 'CMD ["/bin/bash"]' \
    - "$tag" >/dev/null
import_s=$((SECONDS - start))
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect --format '{{.Id}}' "$tag")" ]; then
    docker image rm "$previous" >/dev/null 2>&1 ||
        say "kept the previous $tag ($previous): a container or another tag still uses it"
fi

size=$(docker image inspect --format '{{.Size}}' "$tag")
say "built $tag: $((size / 1000000)) MB;" \
    "debootstrap ${bootstrap_s}s, updates ${upgrade_s}s, import ${import_s}s"
