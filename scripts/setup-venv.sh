#!/usr/bin/env bash
# Create (when missing) the virtual environment VENV with PYTHON and install the package
# editable with EXTRAS (comma-separated, may be empty). Re-running reinstalls the package
# into the existing environment; pip itself stays the version the venv shipped with.
#
#   scripts/setup-venv.sh [PYTHON] [VENV] [EXTRAS]   e.g. scripts/setup-venv.sh python3 .venv preprocess,dev
set -euo pipefail

python=${1:-python3}
venv=${2:-.venv}
extras=${3:-}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$(realpath -m -- "$venv")

die() {
    echo "setup-venv: $*" >&2
    exit 1
}

command -v "$python" >/dev/null 2>&1 ||
    die "no Python interpreter '$python' on PATH; pass one, e.g. make setup PYTHON=python3.11"

venv_works() {
    [ -x "$venv/bin/python" ] && "$venv/bin/python" -m pip --version >/dev/null 2>&1
}

make_venv() {
    # --clear replaces a half-made venv (an interpreter but no pip, after ensurepip failed).
    "$python" -m venv --clear "$venv"
}

if ! venv_works; then
    echo "setup-venv: creating $venv with $python"
    err=$(mktemp)
    trap 'rm -f "$err"' EXIT
    if ! make_venv 2>"$err"; then
        # Debian's interpreter ships venv/ensurepip in a separate package, python3-venv.
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "setup-venv: '$python -m venv' failed; installing python3-venv with apt-get"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            make_venv || die "'$python -m venv $venv' still fails after installing python3-venv"
        else
            cat "$err" >&2
            die "'$python -m venv' failed: install the venv module" \
                "(Debian/Ubuntu: sudo apt-get install python3-venv) or run as root, then retry"
        fi
    fi
fi

spec=$root
[ -n "$extras" ] && spec="${root}[${extras}]"
# constraints.txt pins what pyproject.toml leaves open: the dependencies' dependencies.
echo "setup-venv: pip install -e '$spec' -c constraints.txt into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -c "$root/constraints.txt" -e "$spec"
