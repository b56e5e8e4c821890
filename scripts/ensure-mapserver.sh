#!/usr/bin/env bash
# Make sure MapServer's CGI binary (mapserv) is installed: the WMS server standing in for
# NASA GIBS in tests, the benchmark and the demo (src/earthseg/synthetic/wms_server.py).
# Missing, it comes from Debian (cgi-mapserver, mapserver-bin) when run as root; otherwise
# this prints the install command and exits 1. Quiet when already installed.
#
#   scripts/ensure-mapserver.sh
#   env: MAPSERV (path of the binary, default /usr/lib/cgi-bin/mapserv)
set -euo pipefail

mapserv=${MAPSERV:-/usr/lib/cgi-bin/mapserv}
packages=(cgi-mapserver mapserver-bin)

if [ -x "$mapserv" ] || command -v mapserv >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-mapserver: error: mapserv not found ($mapserv): install it" \
        "(Debian/Ubuntu: sudo apt-get install --no-install-recommends ${packages[*]})" \
        "or run this script as root" >&2
    exit 1
fi
echo "ensure-mapserver: installing ${packages[*]} from Debian"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
if [ ! -x "$mapserv" ] && ! command -v mapserv >/dev/null 2>&1; then
    echo "ensure-mapserver: error: installed ${packages[*]} but found no mapserv at $mapserv" >&2
    exit 1
fi
