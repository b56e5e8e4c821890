#!/usr/bin/env bash
# Build an earthseg image from containers/ROLE/Dockerfile with BuildKit, without Docker Hub
# and behind a TLS-intercepting proxy when need be.
#
#   scripts/build-image.sh ROLE FLAVOR       ROLE: train or serve, FLAVOR: cpu or gpu
#
# Tags earthseg-ROLE:VERSION-FLAVOR and earthseg-ROLE:FLAVOR (VERSION from pyproject.toml),
# and in a git checkout earthseg-ROLE:SHA-FLAVOR (SHA-dirty-FLAVOR with uncommitted changes).
#
# env: BASE_IMAGE   default earthseg-base:bookworm, made by scripts/base-image.sh when missing
#      CA_BUNDLE    CA certificates pip inside the build trusts; default the first file of
#                   SSL_CERT_FILE, REQUESTS_CA_BUNDLE, PIP_CERT, /etc/ssl/certs/ca-certificates.crt.
#                   It is passed as a BuildKit secret: it ends up in no layer.
#      DOCKER_BUILD_ARGS  extra arguments for the build (e.g. --no-cache, --progress=plain)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
base_image=${BASE_IMAGE:-earthseg-base:bookworm}

say() { echo "build-image: $*"; }
die() {
    echo "build-image: error: $*" >&2
    exit 1
}

[ $# -eq 2 ] || die "usage: $0 ROLE FLAVOR   (e.g. $0 train cpu)"
role=$1
flavor=$2
case "$flavor" in
    cpu | gpu) ;;
    *) die "FLAVOR must be cpu or gpu, got '$flavor'" ;;
esac
dockerfile=containers/$role/Dockerfile
[ -f "$root/$dockerfile" ] || die "no $dockerfile for ROLE '$role' (roles: $(cd "$root/containers" && echo *))"

# A client that builds with BuildKit (needed for the CA secret): one with the buildx plugin,
# or a client older than 23.0, whose `docker build` has BuildKit built in (Debian 12's
# docker.io at /usr/bin/docker). Docker 23+ without buildx cannot: it refuses DOCKER_BUILDKIT=1.
build=()
pick_client() {
    local client major
    for client in docker /usr/bin/docker; do
        command -v "$client" >/dev/null 2>&1 || continue
        if "$client" buildx version >/dev/null 2>&1; then
            build=("$client" buildx build --load)
            return 0
        fi
        major=$("$client" version --format '{{.Client.Version}}' 2>/dev/null || true)
        major=${major%%.*}
        if [[ "$major" =~ ^[0-9]+$ ]] && [ "$major" -ge 18 ] && [ "$major" -lt 23 ]; then
            build=(env DOCKER_BUILDKIT=1 "$client" build)
            return 0
        fi
    done
    return 1
}

"$root/scripts/ensure-docker.sh"
pick_client || die "no docker client here can build with BuildKit: install the buildx plugin" \
    "(Debian: apt-get install docker-buildx, or Docker's docker-buildx-plugin)," \
    "or put Debian 12's docker.io client (20.10, BuildKit built in) at /usr/bin/docker"

if ! docker image inspect "$base_image" >/dev/null 2>&1; then
    case "$base_image" in
        earthseg-base:*) "$root/scripts/base-image.sh" "$base_image" ;;
        *) say "$base_image is not here: the build pulls it" ;;
    esac
fi

ca=${CA_BUNDLE:-}
if [ -z "$ca" ]; then
    for candidate in "${SSL_CERT_FILE:-}" "${REQUESTS_CA_BUNDLE:-}" "${PIP_CERT:-}" \
        /etc/ssl/certs/ca-certificates.crt; do
        if [ -n "$candidate" ] && [ -f "$candidate" ]; then
            ca=$candidate
            break
        fi
    done
fi
secret=()
if [ -n "$ca" ]; then
    [ -r "$ca" ] || die "CA bundle $ca is not readable"
    secret=(--secret "id=ca,src=$ca")
fi

version=$(awk -F'"' '/^\[/ { project = ($0 == "[project]") } project && /^version *=/ { print $2; exit }' \
    "$root/pyproject.toml")
[ -n "$version" ] || die "no version in the [project] table of $root/pyproject.toml"

# The context holds only what the image is built from (not .venv, demo output or caches),
# sent as a tar stream: the Dockerfile's COPY and bind mounts see the repository layout.
context=(pyproject.toml constraints.txt README.md src containers/requirements.py "containers/$role")

tags=("earthseg-$role:$version-$flavor" "earthseg-$role:$flavor")
if revision=$(git -C "$root" rev-parse --short HEAD 2>/dev/null); then
    # A commit names the image only if the context is that commit's, untracked files included.
    if [ -n "$(git -C "$root" status --porcelain -- "${context[@]}")" ]; then
        revision=$revision-dirty
    fi
    tags+=("earthseg-$role:$revision-$flavor")
else
    revision=unknown
fi
tag_args=()
for tag in "${tags[@]}"; do
    tag_args+=(--tag "$tag")
done

extra=()
read -r -a extra <<<"${DOCKER_BUILD_ARGS:-}"

say "${build[*]} $dockerfile: FLAVOR=$flavor BASE_IMAGE=$base_image${ca:+, CA bundle $ca as a secret}"
start=$SECONDS
tar -C "$root" -c --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' "${context[@]}" |
    "${build[@]}" \
        --file "$dockerfile" \
        --network host \
        --build-arg "BASE_IMAGE=$base_image" \
        --build-arg "FLAVOR=$flavor" \
        --build-arg "VERSION=$version" \
        --build-arg "REVISION=$revision" \
        "${secret[@]}" \
        "${tag_args[@]}" \
        "${extra[@]}" \
        -
size=$(docker image inspect --format '{{.Size}}' "${tags[0]}")
say "built ${tags[*]}: $((size / 1000000)) MB in $((SECONDS - start))s"
